"""One rank of a data-parallel run that `run_training` launched through torchrun (`nproc_per_node` > 1):
`python -m scalinglab.train.worker RUN_FOLDER` trains the run of RUN_FOLDER/config.json."""

from __future__ import annotations

import sys
from pathlib import Path

from scalinglab.config import TrainConfig
from scalinglab.errors import UserError
from scalinglab.io import read_json
from scalinglab.train.loop import run_training
from scalinglab.train.rundir import CONFIG


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    try:
        run_training(TrainConfig.model_validate(read_json(out / CONFIG, "run config")), out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    from scalinglab.train.distributed import end_rank

    code = main(sys.argv[1:])
    end_rank(code)
    sys.exit(code)
