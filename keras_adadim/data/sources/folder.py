"""A folder of images, one sub-folder per class (optionally inside
``train/``, ``val/``, ``test/``; Tiny ImageNet's ``val/`` layout too)."""

import os

import numpy as np

from keras_adadim.data.sources import common

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Folders with more files than this are inspected (channels, size) on an
# evenly spaced sample of this many files.
MAX_INSPECTED_FILES = 5000


def _is_image(fname):
    return fname.lower().endswith(IMAGE_EXTENSIONS) and not fname.startswith(
        "."
    )


def _subdirs(path):
    return sorted(
        d for d in os.listdir(path)
        if not d.startswith(".") and os.path.isdir(os.path.join(path, d))
    )


def _images_under(path):
    out = []
    for root, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(os.path.join(root, f) for f in sorted(files)
                   if _is_image(f))
    return out


def _read_annotations(path):
    """``{file name: class}`` from a Tiny ImageNet ``val_annotations.txt``
    (``<file>\\t<class>\\t...`` per line); a ``ValueError`` naming it
    when it is not such a text file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path!r} cannot be read as text ({type(e).__name__}: {e}); it "
            "should list '<file name>\\t<class>' per line (Tiny ImageNet's "
            "val_annotations.txt). Download it again."
        ) from e
    by_file = {}
    for line in lines:
        parts = line.strip().split("\t")
        if len(parts) >= 2 and parts[0] and parts[1]:
            by_file[parts[0]] = parts[1]
    return by_file


def _scan_split(path):
    """Files and class names of one split folder: ``(files, classes)``
    with ``classes[i]`` the class name of ``files[i]`` (None: unlabelled).
    """
    annotations = os.path.join(path, "val_annotations.txt")
    if os.path.isfile(annotations):  # Tiny ImageNet's val/ layout
        by_file = _read_annotations(annotations)
        folder = os.path.join(path, "images")
        folder = folder if os.path.isdir(folder) else path
        files = _images_under(folder)
        unlisted = [p for p in files if os.path.basename(p) not in by_file]
        if unlisted:
            raise ValueError(
                f"{annotations!r} gives no class for {len(unlisted)} of the "
                f"{len(files)} images beside it, e.g. {unlisted[0]!r}. Each "
                "line must read '<file name>\\t<class>' (Tiny ImageNet's "
                "val_annotations.txt); download it again, or remove the "
                "images it does not list."
            )
        return files, [by_file.get(os.path.basename(p)) for p in files]
    classes = _subdirs(path)
    if classes == ["images"] or not classes:
        files = _images_under(path)
        return files, [None] * len(files)
    files, names = [], []
    for c in classes:
        found = _images_under(os.path.join(path, c))
        files.extend(found)
        names.extend([c] * len(found))
    return files, names


def _class_names_of(path):
    """Class names of a split folder without listing its files."""
    if os.path.isfile(os.path.join(path, "val_annotations.txt")):
        return set(_read_annotations(
            os.path.join(path, "val_annotations.txt")).values())
    classes = _subdirs(path)
    return set() if classes == ["images"] else set(classes)


# PIL's names of the formats tf.io.decode_image reads.
_DECODABLE = ("PNG", "JPEG", "MPO", "BMP", "GIF")


def _inspect(files):
    """(channels per inspected file, sizes, all inspected?) via PIL's
    lazy header reads; TensorFlow decoding if PIL is missing."""
    if len(files) > MAX_INSPECTED_FILES:
        idx = np.linspace(0, len(files) - 1, MAX_INSPECTED_FILES)
        sample = [files[int(i)] for i in idx]
    else:
        sample = files
    chans, sizes = [], []
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is nearly always there
        Image = None
    fix = ("Remove or replace it (download or export the dataset again); "
           "the folder's images must be PNG, JPEG, BMP or GIF files that "
           "TensorFlow decodes.")
    for p in sample:
        if Image is not None:
            try:
                with Image.open(p) as im:
                    mode, size, kind = im.mode, im.size, im.format
                    # PNG: every chunk and its checksum, so that a
                    # truncated file fails here, not mid-training (no
                    # pixels are decoded; other formats: the header only).
                    im.verify()
            except Exception as e:
                what = ("an empty file" if os.path.isfile(p)
                        and os.path.getsize(p) == 0 else
                        "not a readable image (truncated, damaged, or not "
                        "an image)")
                raise ValueError(
                    f"Cannot read image {p!r}: it is {what} "
                    f"({type(e).__name__}: {e}). {fix}"
                ) from e
            if kind not in _DECODABLE:
                raise ValueError(
                    f"Cannot read image {p!r}: it holds {kind} data, which "
                    f"TensorFlow cannot decode. Convert it, e.g. "
                    f"PIL.Image.open(path).save('image.png'). {fix}"
                )
            chans.append(1 if mode in ("1", "L", "LA", "I", "I;16", "F")
                         else 3)
            sizes.append((size[1], size[0]))
        else:
            import tensorflow as tf

            try:
                img = tf.io.decode_image(tf.io.read_file(p),
                                         expand_animations=False)
            except Exception as e:
                raise ValueError(
                    f"Cannot read image {p!r} ({type(e).__name__}). {fix}"
                ) from e
            chans.append(1 if img.shape[-1] <= 2 else 3)
            sizes.append(tuple(img.shape[:2]))
    return chans, sizes, len(sample) == len(files)


def load_folder(path, split, channels, name=None):
    import tensorflow as tf

    name = name or os.path.basename(os.path.normpath(path))
    split_dirs = {}
    for key, aliases in common.SPLIT_FOLDERS.items():
        for a in aliases:
            if os.path.isdir(os.path.join(path, a)):
                split_dirs[key] = os.path.join(path, a)
                break
    want = common.split_key(split)
    if split_dirs:
        if want not in split_dirs:
            folders = ", ".join(
                os.path.basename(d) for d in split_dirs.values()
            )
            raise ValueError(
                f"Folder {path!r} has no split {split!r}; it has "
                f"{', '.join(sorted(split_dirs))} (sub-folders {folders})."
            )
        split_path = split_dirs[want]
        classes = sorted(set().union(
            *(_class_names_of(d) for d in split_dirs.values())
        ))
    else:
        if want != "train":
            raise ValueError(
                f"Folder {path!r} has no train/ val/ test/ sub-folders, so "
                f"it is one split, 'train'; got split={split!r}."
            )
        split_path = path
        classes = sorted(_class_names_of(path))
    files, names = _scan_split(split_path)
    if not files:
        raise ValueError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in "
            f"{split_path!r}. Expected one sub-folder per class, e.g. "
            f"{split_path}/cat/001.png, {split_path}/dog/002.jpg (or the "
            "images directly in the folder, unlabelled)."
        )
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array(
        [index.get(c, -1) if c is not None else -1 for c in names], np.int64
    )
    chans, sizes, complete = _inspect(files)
    n_gray, n_rgb = chans.count(1), chans.count(3)
    native = 3 if n_rgb else 1
    target = channels or native
    if n_gray and n_rgb and channels is None:
        print(
            f"keras_adadim.data: {name!r} mixes grayscale ({n_gray}) and "
            f"colour ({n_rgb}) images{'' if complete else ' (inspected)'}; "
            "decoding all to 3 channels."
        )
    elif target == 3 and n_gray:
        common.note_conversion(name, 1, 3, n_gray)
    elif target == 1 and n_rgb:
        common.note_conversion(name, 3, 1, n_rgb)
    h = w = None
    if complete and len(set(sizes)) == 1:
        h, w = sizes[0]
    files_t = tf.constant(files)
    labels_t = tf.constant(labels)

    def reader(i):
        raw = tf.io.read_file(tf.gather(files_t, i))
        image = tf.io.decode_image(raw, channels=0, dtype=tf.uint8,
                                   expand_animations=False)
        image = common.convert_channels(image, target)
        image = tf.ensure_shape(image, (h, w, target))
        return image, tf.gather(labels_t, i)

    labelled = bool(classes) and bool((labels >= 0).any())

    def fingerprint():
        # Paths (relative), sizes and modification times: cheap (no image
        # is read) and changed by any edit, addition or removal.
        rows = []
        for f, label in zip(files, labels):
            st = os.stat(f)
            rows.append(f"{os.path.relpath(f, path)}\t{st.st_size}\t"
                        f"{st.st_mtime_ns}\t{label}")
        return "files", common.sha256(f"{target}\n".encode(),
                                "\n".join(rows).encode())

    ds = tf.data.Dataset.range(len(files)).map(
        reader, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return common.ImageDataset(
        dataset=ds,
        num_examples=len(files),
        num_classes=len(classes) if labelled else None,
        class_names=list(classes) if labelled else None,
        image_shape=(h, w, target),
        name=name,
        source=f"folder:{path}",
        split=os.path.basename(split_path) if split_dirs else "train",
        access=common.Access(reader=reader, fingerprint=fingerprint,
                             labels=labels),
    )
