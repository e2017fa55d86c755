"""Kill a run at chosen moments, resume it, compare with an uninterrupted run (run by
test_kill_resume.py in a fresh interpreter: ``python kill_script.py ROOT SCENARIOS_JSON``).

A *moment* is the n-th event of a process: every chunk written by an atomic write (config.json,
log truncation, checkpoint files, their manifests, best/model weights, metrics.json), every
training step and every validation. At its moment a child process dies by SIGKILL (or, for
scenarios that ask for it, receives SIGTERM and stops by itself); the next child resumes the
run with ``continue_run`` and may be killed again; the parent finally resumes it to the end.
Each scenario's result is whether the final weights equal the reference run's bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import torch

import tractable.train.bookkeeping as bookkeeping
import tractable.train.loop as loop
import tractable.train.serialization as ser
from tractable.runs import continue_run, train_run

SETTINGS = dict(
    model="maf", data="moons", steps=24, n=256, batch_size=32,
    options={"hidden": [8], "transforms": 2}, progress=False, plots=False,
    train_options={"eval_every": 5, "checkpoint_every": 7, "log_every": 3},
)  # fmt: skip
ser._CHUNK = 4096  # several chunks per large file, so kills land inside writes too

events = {"n": 0, "at": None, "how": "kill", "last": "", "record": None}


def event(what: str) -> None:
    events["n"] += 1
    events["last"] = what
    if events["n"] == events["at"]:
        if events.get("record"):
            Path(events["record"]).write_text(what)
        if events["how"] == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    ser._fault_hook = lambda path, written: event(f"write {Path(path).name}@{written}")
    guarded = loop.guarded_loss
    validate = loop.validate

    def counted_loss(compute, batch):  # noqa: ANN001, ANN202
        event("step")
        return guarded(compute, batch)

    def counted_validate(run):  # noqa: ANN001, ANN202
        event("validate")
        return validate(run)

    loop.guarded_loss = counted_loss
    loop.validate = counted_validate
    bookkeeping.validate = counted_validate


def finish(run: Path) -> None:
    r"""What a user does next: resume a run that has a config.json, else start it (again)."""
    if (run / "config.json").exists():
        continue_run(run, progress=False, plots=False)
    else:
        train_run(out=run, **SETTINGS)


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {
        f"{name}:{k}": v
        for name in ("model", "best")
        for k, v in load_file(str(run / f"{name}.safetensors")).items()
    }


def main() -> None:
    warnings.simplefilter("ignore")
    root, scenarios = Path(sys.argv[1]), json.loads(sys.argv[2])
    install()
    torch.optim.Adam(torch.nn.Linear(1, 1).parameters())  # warm lazy imports before forking
    reference = root / "reference"
    train_run(out=reference, **SETTINGS)
    total = events["n"]
    expected = weights(reference)
    expected_nll = json.loads((reference / "metrics.json").read_text())["test_nll"]
    results = {"events": total}
    for name, spec in scenarios.items():
        run = root / name
        kills = []
        for fraction, how in spec:
            at = max(1, int(fraction * total))
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    events.update(n=0, at=at, how=how, record=f"{run}.moment{len(kills)}")
                    finish(run)
                except KeyboardInterrupt as err:  # SIGTERM: Interrupted after a checkpoint
                    code = getattr(err, "exit_code", 5)
                except BaseException:
                    traceback.print_exc()
                    code = 4
                os._exit(code)
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            moment = Path(f"{run}.moment{len(kills)}")
            what = moment.read_text() if moment.exists() else "after the end"
            kills.append({"at": at, "how": how, "status": status, "during": what})
        events.update(n=0, at=None, record=None)
        try:
            finish(run)
            got = weights(run)
            same = got.keys() == expected.keys() and all(
                torch.equal(got[k], expected[k]) for k in expected
            )
            nll = json.loads((run / "metrics.json").read_text())["test_nll"]
            results[name] = {"kills": kills, "bitwise": same, "nll_equal": nll == expected_nll}
        except Exception as err:
            results[name] = {"kills": kills, "error": f"{type(err).__name__}: {err}"}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
