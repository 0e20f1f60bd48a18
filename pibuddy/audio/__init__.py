"""PiBuddy's ears and mouth: devices, capture, wake word, VAD, Opus, playback."""
