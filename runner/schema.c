/*
 * schema.c: the experiment file's keys, as data. To add a key: add its field to spec.h and its
 * row here, then regenerate the README's reference (scripts/update_readme.sh).
 * tests/test_schema.c checks the table (defaults valid and in range, every key described) and
 * that the README matches it; tests/test_spec.c loads every section.
 */
#include "schema.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "spec.h"

#define OFF(T, f) offsetof(struct T, f)
#define RANGE(lo, hi) .flags = SK_MIN | SK_MAX, .min = (lo), .max = (hi)
#define INF HUGE_VAL

/* --------------------------------------------------------------------------------------- */
/* model */

static const struct schema_key model_keys[] = {
    {.name = "graph", .type = SCHEMA_GRAPH, .offset = OFF(spec_model, graph),
     .flags = SK_REQUIRED | SK_MUST_EXIST,
     .doc = "the network: a path to a graph YAML file (experiments/models/), or the graph "
            "written inline as a mapping"},
    {.name = "pretrained", .type = SCHEMA_PATH, .offset = OFF(spec_model, pretrained),
     .flags = SK_NULLABLE | SK_MUST_EXIST | SK_URL,
     .doc = "a .safetensors file whose tensors are loaded by name before training, or an "
            "https://, http:// or hf://OWNER/REPO[/FILE] URL of one, downloaded into the cache "
            "when a run first needs it"},
    {.name = "pretrained_sha256", .type = SCHEMA_SHA256,
     .offset = OFF(spec_model, pretrained_sha256), .flags = SK_NULLABLE,
     .doc = "the SHA-256 the pretrained file must have, checked when a run loads it (a "
            "download that differs is deleted)"},
    {.name = "reinit", .type = SCHEMA_STRINGS, .offset = OFF(spec_model, reinit), .def = "[]",
     .doc = "names (or name prefixes) of layers re-initialized after loading pretrained "
            "weights, e.g. [fc]"},
};
static const struct schema_section model_section = {
    .name = "model", .keys = model_keys, .nkeys = ARRAY_LEN(model_keys), .shorthand = "graph",
    .doc = "The network. `model: PATH` is short for `model: {graph: PATH}`."};

/* --------------------------------------------------------------------------------------- */
/* data */

static const char *const dataset_choices[] = {"cifar10", "cifar100", "folder", NULL};
static const char *const labels_choices[] = {"fine", "coarse", NULL};
static const char *const resident_choices[] = {"auto", "on", "off", NULL};
static const struct schema_key data_keys[] = {
    {.name = "dataset", .type = SCHEMA_ENUM, .offset = OFF(spec_data, dataset),
     .choices = dataset_choices, .def = "cifar10",
     .doc = "cifar10 and cifar100: the official binary releases; folder: your own images, "
            "ROOT/train/<class>/*.jpg|.png (and ROOT/val/, ROOT/test/ when present)"},
    {.name = "root", .type = SCHEMA_PATH, .offset = OFF(spec_data, root),
     .flags = SK_NULLABLE,
     .doc = "cifar10, cifar100: directory holding cifar-10-batches-bin/ or cifar-100-binary/ "
            "(the environment variable RUNNER_DATA, when set, wins; unset: data/cifar10 under "
            "the current directory); folder: the folder dataset's root, required, and nothing "
            "overrides it"},
    {.name = "labels", .type = SCHEMA_ENUM, .offset = OFF(spec_data, labels),
     .choices = labels_choices, .def = "fine",
     .doc = "cifar100: the 100 fine classes, or the 20 coarse superclasses"},
    {.name = "cache", .type = SCHEMA_PATH, .offset = OFF(spec_data, cache), .flags = SK_NULLABLE,
     .doc = "folder: a directory for decoded images (keyed by each file's path, size and "
            "modification time), sparing later epochs and runs the decoding; unset: none"},
    {.name = "skip_bad", .type = SCHEMA_BOOL, .offset = OFF(spec_data, skip_bad), .def = "false",
     .doc = "folder: leave out the images that cannot be read (a warning line each, counted in "
            "the summary) instead of stopping before training"},
    {.name = "download", .type = SCHEMA_BOOL, .offset = OFF(spec_data, download), .def = "true",
     .doc = "download the official archive (and check its checksum) when the data is missing"},
    {.name = "val_split", .type = SCHEMA_INT, .offset = OFF(spec_data, val_split),
     RANGE(0, 2000000000), .def = "5000",
     .doc = "training images held out, deterministically, for validation; 0: none (a folder "
            "dataset with val/ validates on it instead)"},
    {.name = "subset", .type = SCHEMA_INT, .offset = OFF(spec_data, subset), RANGE(0, 2000000000),
     .def = "0", .doc = "use only this many training images (quick runs); 0: all; both it and "
                        "val_split must leave training images of the data"},
    {.name = "workers", .type = SCHEMA_INT, .offset = OFF(spec_data, workers), RANGE(0, 256),
     .def = "0", .doc = "data-loading threads; 0: chosen from the cores available"},
    {.name = "resident", .type = SCHEMA_ENUM, .offset = OFF(spec_data, resident),
     .choices = resident_choices, .def = "auto",
     .doc = "keep the training set in the device's memory and augment it there: auto does on "
            "a GPU when every training transform can run there (all but resize, mixup and "
            "cutmix); on always does (on the CPU, augmenting on the main thread); off uses "
            "the data-loading threads"},
};
static const struct schema_section data_section = {
    .name = "data", .keys = data_keys, .nkeys = ARRAY_LEN(data_keys),
    .doc = "Where the images come from."};

/* --------------------------------------------------------------------------------------- */
/* augment: lists of transforms, each item `{name: settings}` */

static const char *const fill_choices[] = {"zero", "reflect", NULL};
static const char *const interp_choices[] = {"bilinear", "nearest", NULL};
static const char *const resize_mode_choices[] = {"square", "shorter_side", NULL};

#define T_OFF(f) OFF(spec_transform, f)
static const struct schema_key crop_keys[] = {
    {.name = "size", .type = SCHEMA_INT, .offset = T_OFF(size),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 4096,
     .doc = "side of the square crop, in pixels"},
    {.name = "padding", .type = SCHEMA_INT, .offset = T_OFF(padding), RANGE(0, 1024), .def = "0",
     .doc = "pixels added on every side before cropping"},
    {.name = "fill", .type = SCHEMA_ENUM, .offset = T_OFF(fill), .choices = fill_choices,
     .def = "zero", .doc = "what the padding holds"},
};
static const struct schema_key hflip_keys[] = {
    {.name = "p", .type = SCHEMA_FLOAT, .offset = T_OFF(p), RANGE(0, 1), .def = "0.5",
     .doc = "probability of flipping an image left to right"},
};
static const struct schema_key cutout_keys[] = {
    {.name = "size", .type = SCHEMA_INT, .offset = T_OFF(size),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 4096,
     .doc = "side of the square erased, in pixels (it may overlap the border)"},
    {.name = "p", .type = SCHEMA_FLOAT, .offset = T_OFF(p), RANGE(0, 1), .def = "1.0",
     .doc = "probability of erasing a square"},
};
static const struct schema_key normalize_keys[] = {
    {.name = "mean", .type = SCHEMA_FLOATS, .offset = T_OFF(mean), .count = 3,
     .flags = SK_REQUIRED, .doc = "per-channel mean (R, G, B) of pixels scaled to [0, 1]"},
    {.name = "std", .type = SCHEMA_FLOATS, .offset = T_OFF(std), .count = 3,
     .flags = SK_REQUIRED | SK_MIN | SK_MIN_OPEN, .min = 0,
     .doc = "per-channel standard deviation (R, G, B)"},
};
static const struct schema_key resize_keys[] = {
    {.name = "size", .type = SCHEMA_INT, .offset = T_OFF(size),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 4096,
     .doc = "side of the output in pixels: both sides (square) or the shorter one "
            "(shorter_side); e.g. 224 for ImageNet-pretrained models"},
    {.name = "mode", .type = SCHEMA_ENUM, .offset = T_OFF(mode), .choices = resize_mode_choices,
     .def = "square",
     .doc = "square: size x size (torchvision's Resize((size, size))); shorter_side: the "
            "shorter side becomes size and the longer int(size * long / short), keeping the "
            "aspect (torchvision's Resize(size))"},
    {.name = "interpolation", .type = SCHEMA_ENUM, .offset = T_OFF(interpolation),
     .choices = interp_choices, .def = "bilinear", .doc = "how pixels are resampled"},
};
static const struct schema_key center_crop_keys[] = {
    {.name = "size", .type = SCHEMA_INT, .offset = T_OFF(size),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 4096,
     .doc = "side of the square cut from the centre, in pixels (a smaller image is padded "
            "with zeros first)"},
};
static const struct schema_key rrc_keys[] = {
    {.name = "size", .type = SCHEMA_INT, .offset = T_OFF(size),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 4096,
     .doc = "side of the square output, in pixels"},
    {.name = "scale", .type = SCHEMA_FLOATS, .offset = T_OFF(scale), .count = 2,
     .flags = SK_MIN | SK_MIN_OPEN | SK_MAX, .min = 0, .max = 1, .def = "[0.08, 1.0]",
     .doc = "[lo, hi]: the box's area as a fraction of the image's, drawn uniformly "
            "(lo <= hi)"},
    {.name = "ratio", .type = SCHEMA_FLOATS, .offset = T_OFF(ratio), .count = 2,
     .flags = SK_MIN | SK_MIN_OPEN, .min = 0, .def = "[0.75, 1.3333333333333333]",
     .doc = "[lo, hi]: the box's width / height, drawn log-uniformly (lo <= hi)"},
    {.name = "interpolation", .type = SCHEMA_ENUM, .offset = T_OFF(interpolation),
     .choices = interp_choices, .def = "bilinear", .doc = "how the box is resampled"},
};
static const struct schema_key mix_keys[] = {
    {.name = "alpha", .type = SCHEMA_FLOAT, .offset = T_OFF(alpha),
     .flags = SK_MIN | SK_MIN_OPEN, .min = 0, .def = "1.0",
     .doc = "the Beta(alpha, alpha) distribution the mixing ratio is drawn from"},
    {.name = "p", .type = SCHEMA_FLOAT, .offset = T_OFF(p), RANGE(0, 1), .def = "1.0",
     .doc = "probability of mixing a batch"},
};
#undef T_OFF

static const struct schema_variant transform_variants[] = {
    {"random_crop", crop_keys, ARRAY_LEN(crop_keys), "size",
     "pad, then crop a random square (`random_crop: 32` sets size)"},
    {"hflip", hflip_keys, ARRAY_LEN(hflip_keys), "p", "random horizontal flip (`hflip: 0.5`)"},
    {"cutout", cutout_keys, ARRAY_LEN(cutout_keys), "size",
     "erase a random square to zero after normalization (`cutout: 8`)"},
    {"normalize", normalize_keys, ARRAY_LEN(normalize_keys), NULL,
     "subtract mean, divide by std (images enter the list as values in [0, 1])"},
    {"resize", resize_keys, ARRAY_LEN(resize_keys), "size",
     "resize to a square or by the shorter side (`resize: 224`)"},
    {"mixup", mix_keys, ARRAY_LEN(mix_keys), "alpha",
     "blend pairs of images and their labels (training only)"},
    {"cutmix", mix_keys, ARRAY_LEN(mix_keys), "alpha",
     "paste a box of one image into another, labels mixed by area (training only)"},
    {"center_crop", center_crop_keys, ARRAY_LEN(center_crop_keys), "size",
     "cut a square from the centre (`center_crop: 224`)"},
    {"random_resized_crop", rrc_keys, ARRAY_LEN(rrc_keys), "size",
     "cut a box of random area and aspect, resize it to a square (`random_resized_crop: 224`)"},
};
/* A variant's index is its enum spec_transform_kind. */
_Static_assert(ARRAY_LEN(transform_variants) == SPEC_TRANSFORM_RANDOM_RESIZED_CROP + 1,
               "one transform variant per kind, in the enum's order");
static const struct schema_section transform_section = {
    .name = "augment.*[]", .select = SCHEMA_SELECT_SINGLE_KEY,
    .variants = transform_variants, .nvariants = ARRAY_LEN(transform_variants),
    .variant_offset = OFF(spec_transform, kind),
    .doc = "Each item of `augment.train` and `augment.eval` is one transform: "
           "`{name: {settings}}`, `{name: value}` for its main setting, or just `name` when "
           "the defaults suit. Transforms apply in the order listed."};

static const struct schema_key augment_keys[] = {
    {.name = "train", .type = SCHEMA_LIST, .offset = OFF(spec_augment, train),
     .section = &transform_section, .item_size = sizeof(struct spec_transform), .def = "[]",
     .doc = "transforms for training images"},
    {.name = "eval", .type = SCHEMA_LIST, .offset = OFF(spec_augment, eval),
     .section = &transform_section, .item_size = sizeof(struct spec_transform), .def = "[]",
     .doc = "transforms for validation and test images"},
};
static const struct schema_section augment_section = {
    .name = "augment", .keys = augment_keys, .nkeys = ARRAY_LEN(augment_keys),
    .doc = "Image transforms, in order."};

/* --------------------------------------------------------------------------------------- */
/* optimizer: `type` picks the variant */

#define O_OFF(f) OFF(spec_optimizer, f)
static const char *const optimizer_choices[] = {"sgd", "adam", "adamw", NULL};
static const struct schema_key optimizer_keys[] = {
    {.name = "type", .type = SCHEMA_ENUM, .offset = O_OFF(type), .choices = optimizer_choices,
     .flags = SK_REQUIRED, .doc = "the algorithm"},
    {.name = "lr", .type = SCHEMA_FLOAT, .offset = O_OFF(lr),
     .flags = SK_REQUIRED | SK_MIN | SK_MIN_OPEN, .min = 0,
     .doc = "learning rate (the peak, when the schedule warms up or cycles)"},
    {.name = "clip_grad_norm", .type = SCHEMA_FLOAT, .offset = O_OFF(clip_grad_norm),
     .flags = SK_MIN, .min = 0, .def = "0",
     .doc = "scale gradients down to this global L2 norm when above it; 0: off"},
    {.name = "ema_decay", .type = SCHEMA_FLOAT, .offset = O_OFF(ema_decay), .flags = SK_MIN | SK_MAX | SK_MAX_OPEN,
     .min = 0, .max = 1, .def = "0",
     .doc = "keep an exponential moving average of the weights with this decay per step, "
            "evaluate with it and save it as model.safetensors; 0: off"},
    {.name = "decay_bn_bias", .type = SCHEMA_BOOL, .offset = O_OFF(decay_bn_bias),
     .def = "true", .doc = "apply weight decay to batchnorm parameters and biases too"},
};
static const struct schema_key sgd_keys[] = {
    {.name = "weight_decay", .type = SCHEMA_FLOAT, .offset = O_OFF(weight_decay),
     .flags = SK_MIN, .min = 0, .def = "0", .doc = "L2 penalty added to the gradient"},
    {.name = "momentum", .type = SCHEMA_FLOAT, .offset = O_OFF(momentum),
     .flags = SK_MIN | SK_MAX | SK_MAX_OPEN, .min = 0, .max = 1, .def = "0",
     .doc = "momentum factor"},
    {.name = "dampening", .type = SCHEMA_FLOAT, .offset = O_OFF(dampening),
     .flags = SK_MIN | SK_MAX | SK_MAX_OPEN, .min = 0, .max = 1, .def = "0",
     .doc = "dampening of the momentum"},
    {.name = "nesterov", .type = SCHEMA_BOOL, .offset = O_OFF(nesterov), .def = "false",
     .doc = "Nesterov momentum (needs momentum > 0 and dampening 0)"},
};
#define ADAM_KEYS(wd_default, wd_doc)                                                          \
    {.name = "weight_decay", .type = SCHEMA_FLOAT, .offset = O_OFF(weight_decay),              \
     .flags = SK_MIN, .min = 0, .def = wd_default, .doc = wd_doc},                             \
    {.name = "betas", .type = SCHEMA_FLOATS, .offset = O_OFF(betas), .count = 2,               \
     .flags = SK_MIN | SK_MAX | SK_MAX_OPEN, .min = 0, .max = 1, .def = "[0.9, 0.999]",        \
     .doc = "decay rates of the first and second moment estimates"},                           \
    {.name = "eps", .type = SCHEMA_FLOAT, .offset = O_OFF(eps),                                \
     .flags = SK_MIN | SK_MIN_OPEN, .min = 0, .def = "1.0e-8",                                 \
     .doc = "added to the denominator"},                                                       \
    {.name = "amsgrad", .type = SCHEMA_BOOL, .offset = O_OFF(amsgrad), .def = "false",         \
     .doc = "use the maximum of past second moments"}
static const struct schema_key adam_keys[] = {
    ADAM_KEYS("0", "L2 penalty added to the gradient"),
};
static const struct schema_key adamw_keys[] = {
    ADAM_KEYS("0.01", "decoupled weight decay, applied to the weights"),
};
#undef ADAM_KEYS
#undef O_OFF
static const struct schema_variant optimizer_variants[] = {
    {"sgd", sgd_keys, ARRAY_LEN(sgd_keys), NULL, "stochastic gradient descent with momentum"},
    {"adam", adam_keys, ARRAY_LEN(adam_keys), NULL, "Adam"},
    {"adamw", adamw_keys, ARRAY_LEN(adamw_keys), NULL, "Adam with decoupled weight decay"},
};
static const struct schema_section optimizer_section = {
    .name = "optimizer", .keys = optimizer_keys, .nkeys = ARRAY_LEN(optimizer_keys),
    .select = SCHEMA_SELECT_TYPE, .variants = optimizer_variants,
    .nvariants = ARRAY_LEN(optimizer_variants),
    .doc = "How the weights are updated. The keys a type adds follow the common ones."};

/* --------------------------------------------------------------------------------------- */
/* schedule: the learning rate over the run, per step */

#define S_OFF(f) OFF(spec_schedule, f)
static const char *const schedule_choices[] = {"constant", "step", "multistep", "exponential",
                                               "cosine", "onecycle", NULL};
static const char *const anneal_choices[] = {"cos", "linear", NULL};
static const struct schema_key schedule_keys[] = {
    {.name = "type", .type = SCHEMA_ENUM, .offset = S_OFF(type), .choices = schedule_choices,
     .def = "constant", .doc = "the shape of the learning-rate curve"},
    {.name = "warmup_epochs", .type = SCHEMA_FLOAT, .offset = S_OFF(warmup_epochs),
     .flags = SK_MIN, .min = 0, .def = "0",
     .doc = "linear warm-up to optimizer.lr over this many epochs (fractions allowed)"},
    {.name = "warmup_start_factor", .type = SCHEMA_FLOAT, .offset = S_OFF(warmup_start_factor),
     RANGE(0, 1), .def = "0", .doc = "the warm-up starts at this fraction of optimizer.lr"},
};
static const struct schema_key step_keys[] = {
    {.name = "step_epochs", .type = SCHEMA_INT, .offset = S_OFF(step_epochs),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX, .min = 1, .max = 1000000,
     .doc = "multiply the rate by gamma every this many epochs"},
    {.name = "gamma", .type = SCHEMA_FLOAT, .offset = S_OFF(gamma),
     .flags = SK_MIN | SK_MIN_OPEN | SK_MAX, .min = 0, .max = 1, .def = "0.1",
     .doc = "the factor"},
};
static const struct schema_key multistep_keys[] = {
    {.name = "milestones", .type = SCHEMA_INTS, .offset = S_OFF(milestones),
     .flags = SK_REQUIRED | SK_MIN | SK_MAX | SK_INCREASING, .min = 1, .max = 1000000,
     .doc = "epochs (increasing) at which the rate is multiplied by gamma"},
    {.name = "gamma", .type = SCHEMA_FLOAT, .offset = S_OFF(gamma),
     .flags = SK_MIN | SK_MIN_OPEN | SK_MAX, .min = 0, .max = 1, .def = "0.1",
     .doc = "the factor"},
};
static const struct schema_key exponential_keys[] = {
    {.name = "gamma", .type = SCHEMA_FLOAT, .offset = S_OFF(gamma),
     .flags = SK_REQUIRED | SK_MIN | SK_MIN_OPEN | SK_MAX, .min = 0, .max = 1,
     .doc = "the rate is multiplied by this every epoch"},
};
static const struct schema_key cosine_keys[] = {
    {.name = "min_lr", .type = SCHEMA_FLOAT, .offset = S_OFF(min_lr), .flags = SK_MIN,
     .min = 0, .def = "0", .doc = "the rate at the end of the run"},
};
static const struct schema_key onecycle_keys[] = {
    {.name = "pct_start", .type = SCHEMA_FLOAT, .offset = S_OFF(pct_start),
     .flags = SK_MIN | SK_MAX | SK_MIN_OPEN | SK_MAX_OPEN, .min = 0, .max = 1, .def = "0.3",
     .doc = "fraction of the run spent rising to optimizer.lr"},
    {.name = "div_factor", .type = SCHEMA_FLOAT, .offset = S_OFF(div_factor), .flags = SK_MIN,
     .min = 1, .def = "25", .doc = "the run starts at optimizer.lr / div_factor"},
    {.name = "final_div_factor", .type = SCHEMA_FLOAT, .offset = S_OFF(final_div_factor),
     .flags = SK_MIN, .min = 1, .def = "10000",
     .doc = "the run ends at the starting rate / final_div_factor"},
    {.name = "anneal", .type = SCHEMA_ENUM, .offset = S_OFF(anneal), .choices = anneal_choices,
     .def = "cos", .doc = "shape of both phases"},
};
#undef S_OFF
static const struct schema_variant schedule_variants[] = {
    {"constant", NULL, 0, NULL, "optimizer.lr throughout (after any warm-up)"},
    {"step", step_keys, ARRAY_LEN(step_keys), NULL, "decay by gamma every step_epochs"},
    {"multistep", multistep_keys, ARRAY_LEN(multistep_keys), NULL,
     "decay by gamma at each milestone"},
    {"exponential", exponential_keys, ARRAY_LEN(exponential_keys), NULL,
     "decay by gamma every epoch, smoothly per step"},
    {"cosine", cosine_keys, ARRAY_LEN(cosine_keys), NULL,
     "half a cosine from optimizer.lr down to min_lr"},
    {"onecycle", onecycle_keys, ARRAY_LEN(onecycle_keys), NULL,
     "rise to optimizer.lr, then fall far below it (its own warm-up: no warmup_epochs)"},
};
static const struct schema_section schedule_section = {
    .name = "schedule", .keys = schedule_keys, .nkeys = ARRAY_LEN(schedule_keys),
    .select = SCHEMA_SELECT_TYPE, .variants = schedule_variants,
    .nvariants = ARRAY_LEN(schedule_variants),
    .doc = "The learning rate over the run, updated every step."};

/* --------------------------------------------------------------------------------------- */
/* train, eval, checkpoint */

static const char *const conv_algorithm_choices[] = {"auto", "direct", NULL};
static const struct schema_key train_keys[] = {
    {.name = "epochs", .type = SCHEMA_INT, .offset = OFF(spec_train, epochs), RANGE(1, 1000000),
     .def = "10", .doc = "passes over the training set"},
    {.name = "batch_size", .type = SCHEMA_INT, .offset = OFF(spec_train, batch_size),
     RANGE(1, 65536), .def = "128", .doc = "images per step (the last partial batch is dropped)"},
    {.name = "label_smoothing", .type = SCHEMA_FLOAT, .offset = OFF(spec_train, label_smoothing),
     .flags = SK_MIN | SK_MAX | SK_MAX_OPEN, .min = 0, .max = 1, .def = "0",
     .doc = "cross-entropy against (1 - e) one-hot + e / classes"},
    {.name = "threads", .type = SCHEMA_INT, .offset = OFF(spec_train, threads), RANGE(0, 1024),
     .def = "0", .doc = "CPU compute threads; 0: every core available"},
    {.name = "deterministic", .type = SCHEMA_BOOL, .offset = OFF(spec_train, deterministic),
     .def = "false",
     .doc = "only deterministic algorithms, so GPU runs repeat bit for bit (slower); CPU runs "
            "always do for the same seed and threads"},
    {.name = "tf32", .type = SCHEMA_BOOL, .offset = OFF(spec_train, tf32), .def = "false",
     .doc = "with precision fp32 on a GPU: let convolutions and matrix products use TF32 "
            "tensor cores (10-bit mantissas in the products, several times faster)"},
    {.name = "cuda_graphs", .type = SCHEMA_BOOL, .offset = OFF(spec_train, cuda_graphs),
     .def = "true",
     .doc = "on a GPU: capture the training step and the evaluation as CUDA graphs and replay "
            "them; false runs every kernel from the host (for debugging)"},
    {.name = "log_every", .type = SCHEMA_INT, .offset = OFF(spec_train, log_every),
     RANGE(0, 1000000000), .def = "0",
     .doc = "with tensorboard: true, the training loss of every this many steps as "
            "train/loss_step; 0: off"},
    {.name = "conv_algorithm", .type = SCHEMA_ENUM, .offset = OFF(spec_train, conv_algorithm),
     .choices = conv_algorithm_choices, .def = "auto",
     .doc = "auto: Winograd F(4x4, 3x3) for 3x3 stride-1 convolutions where the backend has it "
            "(the CPU with oneDNN 2.x on a CPU with AVX-512: about 2x faster there, rounding "
            "error a few times larger), direct elsewhere (oneDNN 3.x has no Winograd: there "
            "auto is direct); direct: direct convolution everywhere"},
};
static const struct schema_section train_section = {
    .name = "train", .keys = train_keys, .nkeys = ARRAY_LEN(train_keys),
    .doc = "The training loop."};

static const struct schema_key eval_keys[] = {
    {.name = "batch_size", .type = SCHEMA_INT, .offset = OFF(spec_eval, batch_size),
     RANGE(1, 65536), .def = "256", .doc = "images per evaluation batch"},
    {.name = "test", .type = SCHEMA_BOOL, .offset = OFF(spec_eval, test), .def = "true",
     .doc = "evaluate on the test set at the end"},
    {.name = "flip_tta", .type = SCHEMA_BOOL, .offset = OFF(spec_eval, flip_tta),
     .def = "false", .doc = "average predictions over each test image and its mirror"},
    {.name = "samples", .type = SCHEMA_INT, .offset = OFF(spec_eval, samples), RANGE(0, 10000),
     .def = "16",
     .doc = "correctly and incorrectly classified test images saved, this many of each"},
};
static const struct schema_section eval_section = {
    .name = "eval", .keys = eval_keys, .nkeys = ARRAY_LEN(eval_keys),
    .doc = "Validation every epoch, and the final test."};

static const struct schema_key checkpoint_keys[] = {
    {.name = "every_epochs", .type = SCHEMA_INT, .offset = OFF(spec_checkpoint, every_epochs),
     RANGE(0, 1000000), .def = "1", .doc = "save a checkpoint every this many epochs; 0: never"},
    {.name = "keep", .type = SCHEMA_INT, .offset = OFF(spec_checkpoint, keep),
     RANGE(0, 1000000), .def = "2", .doc = "checkpoints kept (the newest); 0: all"},
};
static const struct schema_section checkpoint_section = {
    .name = "checkpoint", .keys = checkpoint_keys, .nkeys = ARRAY_LEN(checkpoint_keys),
    .doc = "Checkpoints in the run's checkpoints/ directory."};

/* --------------------------------------------------------------------------------------- */
/* hooks */

static const struct schema_key hook_keys[] = {
    {.name = "file", .type = SCHEMA_PATH, .offset = OFF(spec_hook, file),
     .flags = SK_REQUIRED | SK_MUST_EXIST | SK_HOOK,
     .doc = "the .lua file: beside this YAML file, else in the project's hooks/"},
    {.name = "args", .type = SCHEMA_ANY, .offset = OFF(spec_hook, args), .flags = SK_NULLABLE,
     .doc = "any mapping, handed to the hook as written"},
};
static const struct schema_section hook_section = {
    .name = "hooks[]", .keys = hook_keys, .nkeys = ARRAY_LEN(hook_keys), .shorthand = "file",
    .doc = "Each item of `hooks` is a path (`report.lua`) or `{file: PATH, args: {...}}`."};

/* --------------------------------------------------------------------------------------- */
/* the top level */

static const char *const precision_choices[] = {"auto", "fp32", "bf16", "fp16", NULL};
static const char *const hooks_fail_choices[] = {"continue", "stop", NULL};

#define SEC(key, T, field, sec, fl, d)                                                         \
    {.name = key, .type = SCHEMA_SECTION, .offset = OFF(spec, field), .section = &sec,         \
     .flags = fl, .doc = d}
static const struct schema_key experiment_keys[] = {
    {.name = "extends", .type = SCHEMA_PATH, .offset = OFF(spec, extends),
     .flags = SK_NULLABLE | SK_MUST_EXIST,
     .doc = "a base experiment file: its keys apply unless this file sets them (mappings "
            "merge, lists replace, a mapping whose type changes is replaced whole)"},
    {.name = "name", .type = SCHEMA_NAME, .offset = OFF(spec, name),
     .doc = "the run's name, used in results/NAME/; unset: the experiment file's name "
            "without .yaml"},
    {.name = "seed", .type = SCHEMA_INT, .offset = OFF(spec, seed), RANGE(0, 4294967295.0),
     .def = "0", .doc = "seeds every random choice (weights, data order, augmentation)"},
    {.name = "device", .type = SCHEMA_DEVICE, .offset = OFF(spec, device), .def = "auto",
     .doc = "auto (a GPU when one is usable, else the CPU), cpu, cuda or cuda:N"},
    {.name = "precision", .type = SCHEMA_ENUM, .offset = OFF(spec, precision),
     .choices = precision_choices, .def = "auto",
     .doc = "auto: bf16 on a GPU of compute capability 8.0 or newer, fp16 below (7.5: T4, RTX "
            "20xx), fp32 on the CPU; bf16 needs 8.0 or newer; fp16 uses dynamic loss scaling"},
    SEC("model", spec_model, model, model_section, SK_REQUIRED, "the network"),
    SEC("data", spec_data, data, data_section, 0, "the dataset"),
    SEC("augment", spec_augment, augment, augment_section, 0, "image transforms"),
    SEC("optimizer", spec_optimizer, optimizer, optimizer_section, SK_REQUIRED,
        "the weight update"),
    SEC("schedule", spec_schedule, schedule, schedule_section, 0, "the learning rate"),
    SEC("train", spec_train, train, train_section, 0, "the training loop"),
    SEC("eval", spec_eval, eval, eval_section, 0, "evaluation"),
    SEC("checkpoint", spec_checkpoint, checkpoint, checkpoint_section, 0, "checkpoints"),
    {.name = "hooks", .type = SCHEMA_LIST, .offset = OFF(spec, hooks), .section = &hook_section,
     .item_size = sizeof(struct spec_hook), .def = "[]",
     .doc = "Lua files called at the start, after every epoch and at the end"},
    {.name = "hooks_fail", .type = SCHEMA_ENUM, .offset = OFF(spec, hooks_fail),
     .choices = hooks_fail_choices, .def = "continue",
     .doc = "when a hook raises an error: report it and continue, or stop the run cleanly"},
    {.name = "tensorboard", .type = SCHEMA_BOOL, .offset = OFF(spec, tensorboard),
     .def = "false",
     .doc = "write TensorBoard event files to the run's tensorboard/: the epochs' metrics, the "
            "test results, the confusion matrix and sample images, the configuration"},
};
#undef SEC

const struct schema_section schema_experiment = {
    .name = "", .keys = experiment_keys, .nkeys = ARRAY_LEN(experiment_keys),
    .doc = "The top level of an experiment file."};

/* --------------------------------------------------------------------------------------- */
/* Describing keys, for messages and the reference. */

static void fmt_num(char *buf, size_t size, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, "%g", v);
}

/* "[0, 1)", ">= 1", "> 0", or "" */
static void range_text(const struct schema_key *k, char *buf, size_t size)
{
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, k->min);
    fmt_num(hi, sizeof hi, k->max);
    bool has_min = k->flags & SK_MIN, has_max = k->flags & SK_MAX;
    if (has_min && has_max)
        snprintf(buf, size, "in %c%s, %s%c", k->flags & SK_MIN_OPEN ? '(' : '[', lo, hi,
                 k->flags & SK_MAX_OPEN ? ')' : ']');
    else if (has_min)
        snprintf(buf, size, "%s %s", k->flags & SK_MIN_OPEN ? ">" : ">=", lo);
    else if (has_max)
        snprintf(buf, size, "%s %s", k->flags & SK_MAX_OPEN ? "<" : "<=", hi);
    else
        buf[0] = '\0';
}

static void join_choices(const char *const *c, const char *sep, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; c[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? sep : "", c[i]);
}

const char *schema_describe(const struct schema_key *k, char *buf, size_t size)
{
    char range[96], choices[256];
    range_text(k, range, sizeof range);
    const char *sep = range[0] ? " " : "";
    switch (k->type) {
    case SCHEMA_BOOL: snprintf(buf, size, "true or false"); break;
    case SCHEMA_INT: snprintf(buf, size, "an integer%s%s", sep, range); break;
    case SCHEMA_INT2:
        snprintf(buf, size, "an integer%s%s or a list [h, w] of them", sep, range);
        break;
    case SCHEMA_FLOAT: snprintf(buf, size, "a number%s%s", sep, range); break;
    case SCHEMA_STRING: snprintf(buf, size, "a string"); break;
    case SCHEMA_NAME:
        snprintf(buf, size, "a name of letters, digits, '.', '_' and '-'");
        break;
    case SCHEMA_ENUM:
        join_choices(k->choices, " | ", choices, sizeof choices);
        snprintf(buf, size, "one of %s", choices);
        break;
    case SCHEMA_DEVICE: snprintf(buf, size, "auto | cpu | cuda | cuda:N"); break;
    case SCHEMA_PATH:
        snprintf(buf, size, k->flags & SK_URL ? "a path or a URL" : "a path");
        break;
    case SCHEMA_SHA256: snprintf(buf, size, "a SHA-256 digest of 64 hex digits"); break;
    case SCHEMA_FLOATS:
        snprintf(buf, size, "a list of %d numbers%s%s", k->count, range[0] ? ", each " : "",
                 range);
        break;
    case SCHEMA_INTS:
        snprintf(buf, size, "a list of integers%s%s", range[0] ? ", each " : "", range);
        break;
    case SCHEMA_STRINGS: snprintf(buf, size, "a list of strings"); break;
    case SCHEMA_SECTION: snprintf(buf, size, "a mapping"); break;
    case SCHEMA_LIST: snprintf(buf, size, "a list"); break;
    case SCHEMA_GRAPH: snprintf(buf, size, "a path or a mapping"); break;
    case SCHEMA_ANY: snprintf(buf, size, "any mapping"); break;
    }
    return buf;
}

/* --------------------------------------------------------------------------------------- */
/* Markdown reference */

static const char *type_word(const struct schema_key *k, char *buf, size_t size)
{
    switch (k->type) {
    case SCHEMA_BOOL: return "bool";
    case SCHEMA_INT: return "integer";
    case SCHEMA_INT2: return "integer or [h, w]";
    case SCHEMA_FLOAT: return "number";
    case SCHEMA_STRING: return "string";
    case SCHEMA_NAME: return "name";
    case SCHEMA_ENUM: return "enum";
    case SCHEMA_DEVICE: return "device";
    case SCHEMA_PATH: return k->flags & SK_URL ? "path or URL" : "path";
    case SCHEMA_SHA256: return "SHA-256";
    case SCHEMA_FLOATS: snprintf(buf, size, "%d numbers", k->count); return buf;
    case SCHEMA_INTS: return "integers";
    case SCHEMA_STRINGS: return "strings";
    case SCHEMA_SECTION: return "mapping";
    case SCHEMA_LIST: return "list";
    case SCHEMA_GRAPH: return "path or mapping";
    case SCHEMA_ANY: return "mapping";
    }
    return "?";
}

void schema_write_keys(FILE *out, const struct schema_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct schema_key *k = &keys[i];
        char tb[32], allowed[320];
        if (k->type == SCHEMA_ENUM)
            join_choices(k->choices, ", ", allowed, sizeof allowed);
        else
            range_text(k, allowed, sizeof allowed);
        const char *def = k->flags & SK_REQUIRED     ? "**required**"
                          : k->def                    ? k->def
                          : k->type == SCHEMA_SECTION ? "(below)"
                                                      : "unset";
        fprintf(out, "| `%s` | %s | %s%s%s | %s | %s |\n", k->name, type_word(k, tb, sizeof tb),
                k->def ? "`" : "", def, k->def ? "`" : "", allowed, k->doc);
    }
}

static void write_section(FILE *out, const struct schema_section *s, const char *title)
{
    fprintf(out, "### %s\n\n%s\n\n", title, s->doc);
    if (s->nkeys) {
        fprintf(out, "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
        schema_write_keys(out, s->keys, s->nkeys);
        fputc('\n', out);
    }
    for (size_t v = 0; v < s->nvariants; v++) {
        const struct schema_variant *var = &s->variants[v];
        if (s->select == SCHEMA_SELECT_TYPE)
            fprintf(out, "`type: %s` — %s.", var->name, var->doc);
        else
            fprintf(out, "`%s` — %s.", var->name, var->doc);
        if (!var->nkeys) {
            fprintf(out, " No further keys.\n\n");
            continue;
        }
        fprintf(out, "\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
        schema_write_keys(out, var->keys, var->nkeys);
        fputc('\n', out);
    }
}

void schema_write_markdown(FILE *out)
{
    write_section(out, &schema_experiment, "Top level");
    for (size_t i = 0; i < schema_experiment.nkeys; i++) {
        const struct schema_key *k = &schema_experiment.keys[i];
        if (k->type != SCHEMA_SECTION && k->type != SCHEMA_LIST) continue;
        char title[64];
        snprintf(title, sizeof title, "`%s`", k->section->name);
        write_section(out, k->section, title);
        if (k->section == &augment_section) write_section(out, &transform_section, "Transforms");
    }
}
