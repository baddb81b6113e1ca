"""Tools from Model Context Protocol servers (Home Assistant's MCP Server, local stdio servers).

Importing this package does not load the ``mcp`` SDK (about 28 MiB and a second to import);
it is loaded when the first configured server is contacted.
"""

from speakerd.mcp.schema import SchemaNotSupported, to_live
from speakerd.mcp.settings import McpServerSettings
from speakerd.mcp.tools import McpTools

__all__ = ["McpServerSettings", "McpTools", "SchemaNotSupported", "to_live"]
