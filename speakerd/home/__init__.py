"""The speaker in a home: MQTT for Home Assistant discovery, commands, and one answer among speakers.

The daemon builds one ``link.HomeLink`` when ``[mqtt] host`` is set, starts it on its event loop,
calls its ``publish_*`` methods (synchronous, never blocking) when its state changes, implements
``link.HomeCommands`` for what Home Assistant may ask, and awaits ``arbitrate`` on a wake word.
Only the settings are imported here: the MQTT client loads only when a broker is configured.
"""

from speakerd.home.settings import MqttCredentialError, MqttSettings, load_mqtt_password, mqtt_credential_warnings

__all__ = ["MqttCredentialError", "MqttSettings", "load_mqtt_password", "mqtt_credential_warnings"]
