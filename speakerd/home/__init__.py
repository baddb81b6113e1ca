"""The speaker in a home: MQTT for Home Assistant discovery, commands, and one answer among speakers.

The daemon builds one ``HomeLink`` when ``[mqtt] host`` is set, starts it on its event loop, calls
its ``publish_*`` methods (synchronous, never blocking) when its state changes, implements
``HomeCommands`` for what Home Assistant may ask, and awaits ``arbitrate`` on a wake word.
"""

from speakerd.home.arbitration import Arbiter, dbfs
from speakerd.home.discovery import HOME_STATES, HomeTimer
from speakerd.home.link import Backoff, HomeCommands, HomeLink
from speakerd.home.settings import MqttCredentialError, MqttSettings, load_mqtt_password, mqtt_credential_warnings

__all__ = [
    "HOME_STATES",
    "Arbiter",
    "Backoff",
    "HomeCommands",
    "HomeLink",
    "HomeTimer",
    "MqttCredentialError",
    "MqttSettings",
    "dbfs",
    "load_mqtt_password",
    "mqtt_credential_warnings",
]
