"""make_folder.py DIR: a small folder dataset for test_tensorboard.sh, written with PIL:
DIR/train/<class>/*.png (24 a class) and DIR/test/<class>/*.png (8 a class), four classes of
32 x 32 images, each class a colour with noise over it (close enough that a few epochs get some of the test images wrong),
a few of them 40 x 36 so that the transforms' resize and crop matter."""
import os
import sys

import numpy as np
from PIL import Image

COLOURS = {"blue": (110, 115, 135), "green": (112, 130, 110), "red": (135, 110, 108),
           "yellow": (130, 128, 105)}


def main():
    root = sys.argv[1]
    rng = np.random.default_rng(7)
    for split, n in (("train", 24), ("test", 8)):
        for name, rgb in COLOURS.items():
            d = os.path.join(root, split, name)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                h, w = (36, 40) if i % 5 == 0 else (32, 32)
                tint = rng.normal(0, 18, 3)  # each image's colour off its class's
                noise = rng.normal(0, 40, (h, w, 3))
                px = np.clip(np.array(rgb, np.float64) + tint + noise, 0, 255).astype(np.uint8)
                Image.fromarray(px, "RGB").save(os.path.join(d, f"{i:03d}.png"))


main()
