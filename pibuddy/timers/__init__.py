"""Offline timers: set by voice (the local brain), by the LLM or any MCP client (tools), shown by
`pibuddy status` and the web page; they ring until someone reacts and survive a restart."""
