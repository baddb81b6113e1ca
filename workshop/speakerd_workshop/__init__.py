"""speakerd's workshop: everything a developer, a test or the demo needs and a speaker never does.

Why apart: the package that goes onto a Raspberry Pi (``speakerd``) holds only what runs there.
The Live API emulator, the test rig, the ALSA software devices and the demo live here, in their
own distribution (``speakerd-workshop``), which ``scripts/dev-setup.sh`` installs and
``scripts/install.sh`` never does.
"""
