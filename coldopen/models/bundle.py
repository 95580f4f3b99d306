"""The four models a server runs, loaded from the settings (each family's own `load` says how)."""

from __future__ import annotations

from dataclasses import dataclass

from coldopen.config.settings import Settings
from coldopen.models.clip import ClipEmbedder, ClipSpec, resolve_device
from coldopen.models.fingerprint import Fingerprinter
from coldopen.models.text import TextEmbedder, TextSpec
from coldopen.models.whisper import WhisperSpec, WhisperTranscriber


@dataclass(frozen=True)
class Models:
    clip: ClipEmbedder
    whisper: WhisperTranscriber
    fingerprinter: Fingerprinter
    text: TextEmbedder

    @classmethod
    def load(cls, settings: Settings) -> Models:
        clip = ClipEmbedder.load(
            ClipSpec(settings.clip_model, settings.clip_pretrained, settings.device, settings.clip_batch_size,
                     settings.clip_precision, settings.clip_threads, settings.data_dir / "models")
        )
        whisper = WhisperTranscriber.load(
            WhisperSpec(
                model=settings.whisper_model,
                device=settings.device,
                compute_type=settings.whisper_compute_type,
                beam_size=settings.whisper_beam_size,
                cpu_threads=settings.cpu_threads,
            )
        )
        device = resolve_device(settings.device)
        return cls(
            clip=clip,
            whisper=whisper,
            fingerprinter=Fingerprinter.load(device, speed_search=settings.sound_speed_search == "on"),
            text=TextEmbedder.load(TextSpec(settings.text_model, device)),
        )

    def dims(self) -> dict[str, int]:
        """Each embedded modality's vector width."""
        return {"visual": self.clip.dim, "spoken": self.text.dim, "caption": self.text.dim}
