import dataclasses
from pathlib import Path

import pytest

from coldopen.config.settings import Settings


def test_environment_then_flags_override_defaults():
    env = {"COLDOPEN_SAMPLE_FPS": "2.5", "COLDOPEN_MAX_FRAMES": "10", "COLDOPEN_DATA_DIR": "/tmp/x", "COLDOPEN_LOG_JSON": "true"}
    s = Settings.from_env(env, max_frames=20, clip_model=None)
    assert s.sample_fps == 2.5 and s.max_frames == 20 and s.data_dir == Path("/tmp/x") and s.log_json
    assert s.clip_model == "ViT-B-32"


def test_invalid_values_are_reported_with_their_name():
    with pytest.raises(ValueError, match="COLDOPEN_MAX_FRAMES='many'"):
        Settings.from_env({"COLDOPEN_MAX_FRAMES": "many"})
    with pytest.raises(ValueError, match="sample_fps must be > 0"):
        Settings(sample_fps=0)
    with pytest.raises(ValueError, match="max_open_streams"):  # every upload is a stream
        Settings(max_open_streams=2, max_concurrent_ingests=4)
    with pytest.raises(ValueError, match="metrics_listen must be host:port"):
        Settings(metrics_listen="9464")


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().max_frames = 3  # type: ignore[misc]


def test_the_start_up_log_masks_a_database_password():
    shown = Settings(database_url="postgresql://coldopen:s3cret@db:5432/coldopen").redacted()
    assert shown["database_url"] == "postgresql://coldopen:***@db:5432/coldopen"
    assert "s3cret" not in str(shown)
