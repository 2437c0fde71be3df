/*
 * url.h: the URLs model.pretrained takes (http://, https:// and hf://), read without any
 * network access: their syntax, what hf:// stands for, and the name a downloaded copy gets in
 * the cache.
 *
 *     if (url_has_scheme(text) && (why = url_problem(text))) ...error: why...
 *     url_resolve("hf://timm/resnet50.tv_in1k", buf, sizeof buf);
 *         // https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/model.safetensors
 *     url_cache_name("hf://timm/resnet50.tv_in1k", buf, sizeof buf);
 *         // timm--resnet50.tv_in1k--model-<16 hex digits>.safetensors
 *
 * hf://OWNER/REPO[/FILE] names FILE (default model.safetensors; it may hold slashes) in the
 * main branch of the Hugging Face repository OWNER/REPO: $HF_ENDPOINT/OWNER/REPO/resolve/main/
 * FILE, with HF_ENDPOINT (as the huggingface_hub library reads it) defaulting to
 * https://huggingface.co. Covered by tests/test_pretrained_url.c.
 */
#ifndef RUNNER_URL_H
#define RUNNER_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_HF_DEFAULT_ENDPOINT "https://huggingface.co"
#define URL_HF_DEFAULT_FILE "model.safetensors"

/* Whether text begins with a scheme and "://" (any scheme: "ftp://x" too), i.e. is meant as a
 * URL rather than a path. */
bool url_has_scheme(const char *text);

/* For text with a scheme: NULL when it is a URL the runner downloads (http:// or https://
 * with a host; hf://OWNER/REPO[/FILE] without empty, "." or ".." components; nothing but
 * printable ASCII without spaces), else what is wrong, as a phrase for an error message. */
const char *url_problem(const char *text);

/* The URL to request for text (url_problem NULL): http(s) as written, hf:// expanded as above
 * (a trailing slash of HF_ENDPOINT dropped). False when it does not fit in buf. */
bool url_resolve(const char *text, char *buf, size_t size);

/*
 * The file name a copy of text is kept under: a readable part (for hf://, OWNER--REPO--FILE
 * with FILE's slashes as "--"; for http(s), the last component of the URL's path, or its host)
 * of letters, digits, '.', '_' and '-' only, then '-' and 16 hex digits of the SHA-256 of the
 * resolved URL (url_resolve), so that two URLs, or one hf:// URL under two endpoints, never
 * share a file; a ".safetensors" ending stays last. False when it does not fit in buf.
 */
bool url_cache_name(const char *text, char *buf, size_t size);

#endif
