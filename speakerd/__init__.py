"""speakerd: a Raspberry Pi smart-speaker daemon for the Gemini Live API."""

__version__ = "0.1.0"
