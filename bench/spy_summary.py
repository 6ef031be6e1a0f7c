"""Summarise a py-spy raw (collapsed-stack) recording, per thread: where the samples went.

    .venv/bin/python bench/spy_summary.py /tmp/spy/ingest-sqlite.txt [--top 25]

``bench/ingest.py --py-spy DIR`` writes such recordings (``py-spy record --format raw --threads``).
Without ``--idle`` py-spy only records threads that are running, so a thread's sample count is
its active (on-CPU or in-C-call) time. Frames are keyed by function and file, without the line.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def frame_key(frame: str) -> str:
    m = FRAME.match(frame.strip())
    return f"{m['func']} ({m['file']})" if m else frame.strip()


def load(path: Path) -> dict[str, list[tuple[list[str], int]]]:
    threads: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        threads[thread].append(([frame_key(f) for f in frames[1:]], int(count)))
    return threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--under", default=None, help="only stacks through a frame containing this text, "
                                                   "cut to what is below it")
    args = ap.parse_args()
    threads = load(args.path)
    if args.under:
        grand_all = sum(n for stacks in threads.values() for _, n in stacks)
        for thread, stacks in list(threads.items()):
            cut = []
            for frames, n in stacks:
                hit = next((i for i, f in enumerate(frames) if args.under in f), None)
                if hit is not None:
                    cut.append((frames[hit:], n))
            threads[thread] = cut
        threads = {t: s for t, s in threads.items() if s}
        print(f"stacks through {args.under!r}: {sum(n for s in threads.values() for _, n in s)} "
              f"of {grand_all} samples")
    grand = sum(n for stacks in threads.values() for _, n in stacks)
    print(f"{args.path}: {grand} samples")
    for thread, stacks in sorted(threads.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        total = sum(n for _, n in stacks)
        inclusive: Counter[str] = Counter()
        own: Counter[str] = Counter()
        for frames, n in stacks:
            for f in set(frames):
                inclusive[f] += n
            if frames:
                own[frames[-1]] += n
        print(f"\n== thread {thread}: {total} samples ({100 * total / grand:.0f}% of all)")
        print("  inclusive:")
        for f, n in inclusive.most_common(args.top):
            print(f"    {100 * n / total:5.1f}%  {f}")
        print("  self:")
        for f, n in own.most_common(min(args.top, 15)):
            print(f"    {100 * n / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
