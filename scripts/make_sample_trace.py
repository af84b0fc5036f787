"""Writes scenarios/traces/sample-mooncake.jsonl: a synthetic trace in Mooncake's layout (not real data).

Chat sessions over three shared system prompts: each turn resends the conversation so far (its blocks
keep their hash ids) plus a new message, so a prefix cache can reuse most of every later turn. Arrivals
are Poisson with a burst in the middle. Deterministic: `python scripts/make_sample_trace.py`.
"""

import json
import random
from pathlib import Path

BLOCK = 512
OUT = Path(__file__).resolve().parents[1] / "scenarios" / "traces" / "sample-mooncake.jsonl"


def main(seed: int = 16, duration_s: float = 60.0) -> None:
    rng = random.Random(seed)
    next_id = 3  # ids 0-2: the three system prompts (one block each)
    sessions: list[dict] = []
    rows, t = [], 0.0
    while t < duration_s:
        rate = 6.0 if 25 <= t < 35 else 3.0  # a burst: twice the rate for 10 s
        t += rng.expovariate(rate)
        if sessions and rng.random() < 0.6:  # a later turn of an open session
            s = rng.choice(sessions)
        else:
            s = {"ids": [rng.randrange(3)], "turns": 0}
            sessions.append(s)
        new_blocks = rng.randint(1, 3)
        s["ids"] += list(range(next_id, next_id + new_blocks))
        next_id += new_blocks
        s["turns"] += 1
        input_length = len(s["ids"]) * BLOCK - rng.randrange(BLOCK // 2)  # the last block is partial
        output_length = rng.randint(32, 256)
        rows.append({"timestamp": round(t * 1000), "input_length": input_length, "output_length": output_length,
                     "hash_ids": list(s["ids"])})
        s["ids"] += [next_id]  # the reply joins the conversation
        next_id += 1
        if s["turns"] >= 6 or len(s["ids"]) > 9:  # stays inside an 8k context
            sessions.remove(s)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{OUT}: {len(rows)} rows over {t:.0f} s")


if __name__ == "__main__":
    main()
