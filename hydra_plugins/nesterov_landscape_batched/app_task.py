"""How the batched launchers tell this app's jobs from any other Hydra app's: the app marks its
task function with `app_task`. Those jobs the launchers derive, stack and run themselves
(_stack_worker.py), without calling the task function; every other task function's jobs run
through Hydra's run_job, as Hydra's basic launcher runs them (_hydra_jobs.py).

A mark, not a comparison with the app's function: Hydra hands the launcher the undecorated task
function, which under `python -m nesterov_landscape` lives in the module `__main__` and is not the
function an import of nesterov_landscape.__main__ would give; and importing the app to compare
would bring it (and its MKL settings) into every other app that selects these launchers. The mark
states the promise the launchers rely on: the app's jobs may be run by its stack worker instead."""

from typing import Any, Callable

MARK = "nesterov_landscape_stacked_jobs"


def app_task(task_function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    setattr(task_function, MARK, True)
    return task_function


def is_app_task(task_function: Callable[[Any], Any] | None) -> bool:
    return getattr(task_function, MARK, False) is True
