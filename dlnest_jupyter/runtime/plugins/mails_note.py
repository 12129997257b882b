"""MailsNote: a mail when training finishes or aborts, as DLNest's (`giveResultValues`, `custom`
and `SOTA` included), sent by `mail.py`: bounded by a timeout, over TLS when offered, logged in
only with a user name, and a failure said in the run's output instead of swallowed."""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

from .base import ShippedPlugin
from .mail import MailSettings, send

NAME = "MailsNote"


class DLNestPlugin(ShippedPlugin):
    _NAME = NAME
    _result_values: ClassVar[dict[str, Any]] = {}

    def trainAborting(self: Any, exception: BaseException) -> None:
        # A run stopped on purpose (`del`, a sweep's pruner: SIGTERM becomes SystemExit) did
        # not abort: DLNest's `del` killed it, and no mail went either.
        if isinstance(exception, SystemExit | KeyboardInterrupt):
            return
        if _enabled(self, "Aborting"):
            where = self.getArgs().get("root_file_path", "")
            text = "".join(traceback.format_exception(exception))
            _mail(
                self, "Train Aborted!", f"Train task in {where} aborted with this exception\n{text}"
            )

    def ATrain(self: Any) -> None:
        if _enabled(self, "TrainFinish"):
            text = f"Train task in {self.getArgs().get('root_file_path', '')} finished\n"
            results = DLNestPlugin._getResultsStr()
            if results:
                text += "\nThe final results are: \n" + results
            _mail(self, "Train Finished!", text)

    @classmethod
    def giveResultValues(cls, resultsDict: dict[str, Any]) -> None:
        """What the finish mail reports (a life cycle calls it with its best values)."""
        DLNestPlugin._result_values = dict(resultsDict)

    @classmethod
    def _getResultsStr(cls) -> str:
        return "".join(f"| {key} : {value}" for key, value in DLNestPlugin._result_values.items())

    def custom(self: Any, message: str, subject: str) -> None:
        where = self.getArgs().get("root_file_path", "")
        _mail(self, subject, f"Train task in {where} gives a message\n{message}")

    def SOTA(self: Any, key: str, value: Any) -> None:
        where = self.getArgs().get("root_file_path", "")
        text = (
            f"Congratulations! SOTA performance in {key} has been made by your train task "
            f"{where} with value {value}!"
        )
        DLNestPlugin.custom(self, text, f"SOTA for {key}!")


def _enabled(host: Any, event: str) -> bool:
    if host._status.rank not in (-1, 0):  # one mail per run, from its first rank
        return False
    return event in DLNestPlugin.setting(host, "enable_list")


def _mail(host: Any, subject: str, text: str) -> None:
    settings = MailSettings.from_config(
        lambda key, default: DLNestPlugin.setting(host, key, default)
    )
    failed = send(settings, subject, text)
    if failed is None:
        print(f"dlnest: MailsNote sent {subject!r} to {settings.to}", flush=True)
    else:
        print(
            f"dlnest: MailsNote could not send {subject!r} through {settings.host}:"
            f"{settings.port}: {failed}",
            flush=True,
        )
