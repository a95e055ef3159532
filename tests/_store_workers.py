"""Worker processes for the store's multi-process and crash tests (run with ``python -m tests._store_workers``).

Every frame a worker writes identifies itself and can be checked for internal consistency: all rows carry the
same ``writer`` and ``seq``, and ``value`` is ``seq * 1_000_000 + writer * 1_000 + row``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import numpy as np
import pandas as pd

from features.store.feature_store import FeatureStoreConfig, SimpleFeatureStore

GROUP, FEATURE = "shared", "contended"


def make_frame(writer: int, seq: int, rows: int) -> pd.DataFrame:
    row = np.arange(rows, dtype=np.int64)
    return pd.DataFrame(
        {
            "id": row,
            "writer": np.full(rows, writer, dtype=np.int64),
            "seq": np.full(rows, seq, dtype=np.int64),
            "value": seq * 1_000_000 + writer * 1_000 + row,
        }
    )


def check_frame(frame: pd.DataFrame) -> tuple[int, int]:
    """Return (writer, seq) of a frame written by ``make_frame``; AssertionError if it is torn or mixed."""
    writers, seqs = frame["writer"].unique(), frame["seq"].unique()
    assert len(writers) == 1 and len(seqs) == 1, f"mixed frame: writers={writers} seqs={seqs}"
    writer, seq = int(writers[0]), int(seqs[0])
    expected = seq * 1_000_000 + writer * 1_000 + np.arange(len(frame))
    assert np.array_equal(frame["value"].to_numpy(), expected), "frame values do not match their writer and seq"
    return writer, seq


def contend(base_path: str, process_id: int, threads: int, writes: int, rows: int) -> list[dict]:
    """Each thread alternates writes and verified reads; returns one record per write and read."""
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=base_path, cache_max_size=4))
    log: list[dict] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run(thread_id: int) -> None:
        writer = process_id * 100 + thread_id
        try:
            for seq in range(writes):
                store.save_features(GROUP, {FEATURE: make_frame(writer, seq, rows)})
                got = check_frame(store.get_features([FEATURE], GROUP)[FEATURE])
                with lock:
                    log.append({"op": "write", "writer": writer, "seq": seq})
                    log.append({"op": "read", "writer": got[0], "seq": got[1]})
        except Exception as error:  # reported to the parent test, which fails on any
            errors.append(f"{type(error).__name__}: {error}")

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        log.append({"op": "error", "errors": errors})
    return log


def write_forever(base_path: str, rows: int, start_seq: int) -> None:
    """Write seq, seq+1, ... and print each seq after its save returned (the crash test kills us anywhere)."""
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=base_path, cache_enabled=False))
    print("ready", flush=True)
    seq = start_seq
    while seq < start_seq + 10_000:  # bounded; the parent kills us long before
        store.save_features(GROUP, {FEATURE: make_frame(0, seq, rows + seq % 7)})
        print(seq, flush=True)
        seq += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["contend", "write-forever"])
    parser.add_argument("--base-path", required=True)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--start-seq", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "contend":
        json.dump(contend(args.base_path, args.process_id, args.threads, args.writes, args.rows), sys.stdout)
    else:
        write_forever(args.base_path, args.rows, args.start_seq)


if __name__ == "__main__":
    main()
