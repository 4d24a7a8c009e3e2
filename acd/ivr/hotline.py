"""The built-in hotline greeting: play a prompt, read one digit, hand it to the dialplan.

It is the first route the daemon serves and the smallest useful IVR: the dialplan's
``[acd-hotline]`` context acts on the ``ACD_CHOICE`` channel variable set here. YAML
flows (``ivr_flows/``) build on the same ``InboundCall`` interface.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd.inbound import InboundCall

CHOICE_VARIABLE = "ACD_CHOICE"
DIGITS = "0123456789*#"


@dataclass(frozen=True)
class HotlineGreeting:
    """Prompt, how long to wait for a key after it, and the variable the choice lands in."""

    prompt: str = "hello-world"
    wait_ms: int = 5000

    async def __call__(self, call: InboundCall) -> None:
        await call.answer()
        digit = await call.agi.stream_file(self.prompt, escape_digits=DIGITS)
        if digit is None:
            digit = await call.agi.wait_for_digit(self.wait_ms)
        await call.agi.set_variable(CHOICE_VARIABLE, digit or "")
