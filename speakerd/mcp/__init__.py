"""Tools from Model Context Protocol servers (Home Assistant's MCP Server, local stdio servers).

This package imports only the settings and the schema conversion, so ``speakerd.config`` can use
``McpServerSettings`` without an import cycle; the provider is ``speakerd.mcp.tools.McpTools``.
The ``mcp`` SDK itself (about 26 MiB) is loaded when the first configured server is contacted.
"""

from speakerd.mcp.schema import SchemaNotSupported, to_live
from speakerd.mcp.settings import McpServerSettings

__all__ = ["McpServerSettings", "SchemaNotSupported", "to_live"]
