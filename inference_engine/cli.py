"""`kakeya-runtime`: serve a model, or put one into the Hugging Face cache."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from inference_engine.config import DEFAULT_MODEL_ID, LanePadding, WhenFull
from inference_engine.extras import missing_extra_message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kakeya-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    prewarm = sub.add_parser("prewarm", help="build or download a model into the HF cache")
    prewarm.add_argument(
        "--model", default=DEFAULT_MODEL_ID, help="model id (default: %(default)s)"
    )
    prewarm.add_argument("--check", action="store_true", help="only verify; exit 1 when missing")

    serve = sub.add_parser("serve", help="serve gRPC and the deprecated HTTP shim")
    serve.add_argument("--model", default=DEFAULT_MODEL_ID)
    serve.add_argument("--device", default="auto", help="auto|cpu|cuda|mps")
    serve.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16")
    serve.add_argument(
        "--weights",
        default="native",
        choices=["native", "int8"],
        help="native: weights in --dtype; int8: weight-only int8 linears (opt-in)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    serve.add_argument("--grpc-port", type=int, default=50051, help="0 picks a free port")
    serve.add_argument(
        "--http-port", type=int, default=8000, help="0 picks a free port; -1 disables"
    )
    token = serve.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        default=None,
        help="file holding the bearer token (kept out of the process list); turns auth on",
    )
    token.add_argument(
        "--token",
        default=None,
        help="bearer token; visible in the process list, prefer --token-file or KAKEYA_TOKEN",
    )
    serve.add_argument(
        "--no-reflection",
        action="store_true",
        help="do not register gRPC server reflection (on by default: grpcurl, Postman and "
        "Evans then list and call the service without the .proto)",
    )
    serve.add_argument("--max-sessions", type=int, default=64)
    serve.add_argument(
        "--when-full",
        choices=[policy.value for policy in WhenFull],
        default=WhenFull.REJECT.value,
        help="a full session store: reject new sessions (RESOURCE_EXHAUSTED), or evict the "
        "least recently used idle one (default: %(default)s)",
    )
    serve.add_argument("--session-ttl-s", type=float, default=600.0)
    serve.add_argument(
        "--max-concurrent",
        type=int,
        default=4,
        help="generations decoded together, as one batch per step (default: %(default)s)",
    )
    serve.add_argument(
        "--lane-padding",
        choices=[padding.value for padding in LanePadding],
        default=LanePadding.AUTO.value,
        help="pad every decode step to --max-concurrent rows always, or only where the "
        "model's kernels give a row other bits at another batch size (default: %(default)s)",
    )
    serve.add_argument("--max-queue", type=int, default=32)
    serve.add_argument("--queue-timeout-s", type=float, default=30.0)
    serve.add_argument("--sink", type=int, default=4, help="attention-sink tokens kept forever")
    serve.add_argument("--window", type=int, default=1020, help="most recent tokens kept")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command; exit 2 (naming the extra) when the runtime is not installed."""
    problem = missing_extra_message("kakeya-runtime", "runtime")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    if args.command == "prewarm":
        from inference_engine.models.prewarm import run_prewarm

        return run_prewarm(args.model, check_only=args.check)
    from inference_engine.server.serve import run_serve

    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
