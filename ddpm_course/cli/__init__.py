"""The ``ddpm-course`` command line: one module per command, entry point ``ddpm_course.cli:main``.

| command                  | module        | does                                                          |
|--------------------------|---------------|---------------------------------------------------------------|
| ``ddpm-course train``    | ``cli.train``  | trains a preset recipe (``train.PRESETS``), saves a checkpoint |
| ``ddpm-course sample``   | ``cli.sample`` | draws samples from a shipped model or a checkpoint into an image |
| ``ddpm-course evaluate`` | ``cli.sample`` | scores a model's digits: FD, precision, recall, KID, their floors |
| ``ddpm-course grade``    | ``grade``      | grades learners' notebooks in fresh kernels                   |
| ``ddpm-course make``     | ``cli.make``   | remakes a shipped model with the command recorded in it       |

``cli.main`` builds the parser and turns every failure into one line; ``_commands`` holds what
the commands share (argument types, device options, output checks), grading included.
``python -m ddpm_course.cli ...`` is the same as ``ddpm-course ...`` (torchrun runs it that way).
"""
from .._commands import CLIError, _device, hardware_description
from .main import COMMANDS, build_parser, main
from .sample import add_evaluate_parser, add_sample_parser
from .train import add_train_parser

__all__ = [
    "main", "build_parser", "COMMANDS", "add_train_parser", "add_sample_parser", "add_evaluate_parser",
    "hardware_description", "CLIError", "_device",
]
