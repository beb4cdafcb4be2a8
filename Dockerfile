# communecast controller image (also runs the simulated stations and the broker-accounts
# job in docker-compose.yml). Build: docker build -t communecast .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ffmpeg/ffprobe: media pipeline (pydub); espeak-ng: Vietnamese TTS;
# mosquitto-clients: mosquitto_sub/pub for diagnostics and health checks;
# opus-tools: opusdec, the simulated stations' decoder for Ogg/Opus as on a Pi (device_agents/hardware/decode.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg espeak-ng mosquitto-clients opus-tools \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid: with the file-based broker fallback the broker runs with this group so
# it can read the password/ACL files the controller writes (deploy/mosquitto/README.md).
RUN groupadd --system --gid 10001 communecast \
    && useradd --system --uid 10001 --gid communecast --no-create-home \
        --home-dir /var/lib/communecast --shell /usr/sbin/nologin communecast

WORKDIR /opt/communecast
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY controller ./controller
COPY device_agents ./device_agents
COPY mqtt_adapter ./mqtt_adapter
COPY firmware_sim ./firmware_sim
COPY communecast ./communecast
COPY audio_assets ./audio_assets
RUN pip install '.[all]' \
    && install -d -o communecast -g communecast -m 0750 \
        /var/lib/communecast /var/lib/communecast-broker /var/lib/communecast-fleet

USER communecast
ENV COMMUNECAST_DATA_DIR=/var/lib/communecast \
    COMMUNECAST_HTTP_HOST=0.0.0.0 \
    COMMUNECAST_HTTP_PORT=8080
EXPOSE 8080

CMD ["communecast", "controller", "run"]
