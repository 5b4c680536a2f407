"""The ``adadim`` command line.

    adadim zoo list
    adadim zoo info NAME
    adadim zoo download NAME [--output DIR] [--revision REV] [--full-model]
    adadim zoo push DIR REPO_ID [--private] [--token T] [--message M]
    adadim zoo train NAME [--output DIR]

Each top-level command is a function ``add_<command>_parser(subparsers)``
listed in ``COMMANDS``; a new command (``pretrain``, ``evaluate``) adds its
own function there. Handlers return an exit status; ``ValueError`` and
``OSError`` raised by the library are printed as ``error: ...`` (status 2).
"""

import argparse
import sys


# --------------------------------------------------------------------- zoo
def _zoo_list(args):
    from keras_adadim import zoo

    entries = zoo.load_registry()
    print(f"{'name':<36}{'status':<11}{'dataset':<17}{'backbone'}")
    for name in sorted(entries):
        e = entries[name]
        backbone = (e.get("backbone") or "").split(" (")[0]
        print(f"{name:<36}{e['status']:<11}{e.get('dataset', ''):<17}{backbone}")
    print(
        "\n`adadim zoo info NAME` for the recipe and metrics; "
        "`keras_adadim.from_pretrained(NAME)` to load a published one."
    )
    return 0


def _zoo_info(args):
    from keras_adadim import zoo

    print(zoo.describe(zoo.get(args.name)))
    return 0


def _zoo_download(args):
    from keras_adadim import hub

    path = hub.download(
        args.name,
        directory=args.output,
        revision=args.revision,
        full_model=args.full_model,
        cache_dir=args.cache_dir,
    )
    print(path)
    return 0


def _zoo_push(args):
    from keras_adadim import hub

    info = hub.push_to_hub(
        args.directory,
        args.repo_id,
        token=args.token,
        private=args.private,
        commit_message=args.message,
    )
    print(getattr(info, "commit_url", info))
    return 0


def _zoo_train(args):
    from keras_adadim import zoo

    out = args.output or f"runs/{args.name}"
    directory, results = zoo.train(args.name, out)
    acc = results.get("linear_probe_accuracy")
    print(f"\nSaved {args.name} to {directory} (linear-probe top-1 {acc}).")
    return 0


def add_zoo_parser(subparsers):
    zoo_p = subparsers.add_parser(
        "zoo", help="the model zoo: list, inspect, download, push, train"
    )
    sub = zoo_p.add_subparsers(dest="zoo_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list the zoo's models")
    p.set_defaults(handler=_zoo_list)

    p = sub.add_parser("info", help="recipe, hashes and metrics of one model")
    p.add_argument("name")
    p.set_defaults(handler=_zoo_info)

    p = sub.add_parser(
        "download",
        help="fetch and verify a model file (into the HF cache, or --output)",
    )
    p.add_argument("name", help="zoo name, hf://org/repo, or a local path")
    p.add_argument("--output", help="copy the verified file into this directory")
    p.add_argument("--revision")
    p.add_argument("--full-model", action="store_true",
                   help="the full AdaDimModel (model.keras), not the encoder")
    p.add_argument("--cache-dir")
    p.set_defaults(handler=_zoo_download)

    p = sub.add_parser(
        "push", help="upload a save_pretrained directory to the Hub"
    )
    p.add_argument("directory")
    p.add_argument("repo_id")
    p.add_argument("--token")
    p.add_argument("--private", action="store_true")
    p.add_argument("--message", default="Upload AdaDim encoder (keras-adadim)")
    p.set_defaults(handler=_zoo_push)

    p = sub.add_parser(
        "train", help="train a zoo model with its recorded recipe"
    )
    p.add_argument("name")
    p.add_argument("--output", help="directory to write (runs/NAME)")
    p.set_defaults(handler=_zoo_train)
    return zoo_p


# Top-level commands; another module adds e.g. add_pretrain_parser here.
COMMANDS = [add_zoo_parser]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="adadim",
        description="keras-adadim: AdaDim self-supervised pre-training.",
    )
    from keras_adadim import __version__

    parser.add_argument("--version", action="version",
                        version=f"keras-adadim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
