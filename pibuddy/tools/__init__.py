"""PiBuddy's tools: a registry of named, schema-checked async handlers, offered over MCP.

Flow: server MCP request -> `tools.mcp.McpServer` -> `ToolRegistry.call` -> handler (driver) -> result text.
Tools know nothing of transports or drivers; drivers know nothing of xiaozhi. Which tools are offered is
decided in `pibuddy.wiring.tools`, which imports the drivers, which import this package.
"""

from pibuddy.tools.arguments import boolean, integer, object_schema, string
from pibuddy.tools.mcp import McpServer, VisionEndpoint
from pibuddy.tools.registry import Tool, ToolRegistry, ToolResult, compact_json, tool

__all__ = [
    "McpServer",
    "Tool",
    "ToolRegistry",
    "ToolResult",
    "VisionEndpoint",
    "boolean",
    "compact_json",
    "integer",
    "object_schema",
    "string",
    "tool",
]
