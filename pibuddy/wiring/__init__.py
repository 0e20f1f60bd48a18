"""Open this first: what a config turns on, in one package.

`services` lists the services `pibuddy run` starts, `tools` the tools offered to the LLM, `brain` the brain
services, `openclaw` the OpenClaw services and `check` the probes of `pibuddy check`. Nothing below this
package imports it; it imports everything it wires.
"""
