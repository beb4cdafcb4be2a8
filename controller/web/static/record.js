// communecast panel, bulletins page: record a bulletin with the microphone (getUserMedia +
// MediaRecorder), watch the level, stop, listen to it, then upload it through the very
// same upload form as a chosen file (the server normalizes loudness and stores Opus).
// Texts come from the template's data-* attributes (Vietnamese or English). No libraries.
(function () {
  "use strict";

  var TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
  // The voice as spoken: no call-style processing (noise suppression and echo cancellation
  // smear speech; gain control pumps). The server normalizes the loudness of every upload.
  var RAW = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };

  function pickType() {
    if (!window.MediaRecorder || !MediaRecorder.isTypeSupported) return "";
    for (var i = 0; i < TYPES.length; i++) if (MediaRecorder.isTypeSupported(TYPES[i])) return TYPES[i];
    return "";
  }

  function extension(type) {
    if (type.indexOf("ogg") >= 0) return ".ogg";
    if (type.indexOf("mp4") >= 0) return ".m4a";
    return ".webm";
  }

  function clock(seconds) {
    var s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function two(n) { return String(n).padStart(2, "0"); }

  function setup() {
    var box = document.getElementById("recorder");
    var form = document.getElementById("upload-form");
    var input = document.getElementById("upload-file");
    if (!box || !form || !input) return;
    var start = document.getElementById("record-start");
    var stop = document.getElementById("record-stop");
    var upload = document.getElementById("record-upload");
    var meter = document.getElementById("record-level");
    var time = document.getElementById("record-time");
    var status = document.getElementById("record-status");
    var preview = document.getElementById("record-preview");
    var maxSeconds = parseInt(box.getAttribute("data-max") || "900", 10);
    var rec = null, stream = null, audio = null, timer = null, chunks = [], began = 0, blob = null;
    box.hidden = false;

    function say(key) { status.textContent = key ? (box.getAttribute("data-" + key) || "") : ""; }
    function state(s) { box.setAttribute("data-state", s); }

    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      start.disabled = true;
      say("insecure");
      return;
    }
    if (!window.MediaRecorder) {
      start.disabled = true;
      say("unsupported");
      return;
    }

    function release() {
      clearInterval(timer);
      timer = null;
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });  // the phone's mic light goes off
      if (audio) audio.close();
      stream = audio = null;
      meter.value = 0;
    }

    function levelMeter() {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return function () {};
      audio = new Ctx();
      var analyser = audio.createAnalyser();
      analyser.fftSize = 1024;
      audio.createMediaStreamSource(stream).connect(analyser);
      var samples = new Float32Array(analyser.fftSize);
      return function () {
        analyser.getFloatTimeDomainData(samples);
        var sum = 0;
        for (var i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
        var rms = Math.sqrt(sum / samples.length);
        // dBFS from -60 to 0 mapped on 0..1: speech at a normal distance sits around the middle.
        meter.value = Math.max(0, Math.min(1, (20 * Math.log10(rms || 1e-6) + 60) / 60));
      };
    }

    start.addEventListener("click", function () {
      start.disabled = true;
      upload.hidden = true;
      say("asking");
      navigator.mediaDevices.getUserMedia({ audio: RAW })
        .then(function (s) {
          stream = s;
          var type = pickType();
          rec = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
          chunks = [];
          rec.addEventListener("dataavailable", function (ev) { if (ev.data && ev.data.size) chunks.push(ev.data); });
          rec.addEventListener("stop", function () {
            var seconds = (performance.now() - began) / 1000;
            release();
            blob = new Blob(chunks, { type: rec.mimeType || type || "audio/webm" });
            if (preview.src) URL.revokeObjectURL(preview.src);
            preview.src = URL.createObjectURL(blob);
            preview.hidden = false;
            upload.hidden = false;
            start.disabled = false;
            stop.disabled = true;
            box.setAttribute("data-seconds", seconds.toFixed(2));
            time.textContent = clock(seconds);
            state("recorded");
            say("done");
          });
          var level = levelMeter();
          rec.start(250);
          began = performance.now();
          state("recording");
          say("recording");
          stop.disabled = false;
          timer = setInterval(function () {
            var seconds = (performance.now() - began) / 1000;
            time.textContent = clock(seconds);
            level();
            if (seconds >= maxSeconds && rec.state === "recording") rec.stop();
          }, 100);
        })
        .catch(function () {
          release();
          start.disabled = false;
          state("idle");
          say("denied");
        });
    });

    stop.addEventListener("click", function () {
      if (rec && rec.state === "recording") rec.stop();
    });

    upload.addEventListener("click", function () {
      if (!blob) return;
      var now = new Date();
      var name = (box.getAttribute("data-name") || "Bản ghi âm") + " " + two(now.getDate()) + "-" +
        two(now.getMonth() + 1) + "-" + now.getFullYear() + " " + two(now.getHours()) + "-" +
        two(now.getMinutes()) + extension(blob.type);
      var file = new File([blob], name, { type: blob.type });
      upload.disabled = start.disabled = true;
      state("uploading");
      say("uploading");
      try {
        var dt = new DataTransfer();
        dt.items.add(file);
        input.files = dt.files;  // the recording becomes the form's file: the same upload as any other
        form.requestSubmit ? form.requestSubmit() : form.submit();
      } catch (e) {
        var body = new FormData(form);
        body.set("file", file, name);
        fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
          .then(function (r) {
            if (r.ok && r.redirected) { window.location.assign(r.url); return; }
            upload.disabled = start.disabled = false;
            say("failed");
          })
          .catch(function () { upload.disabled = start.disabled = false; say("failed"); });
      }
    });
  }

  document.addEventListener("DOMContentLoaded", setup);
})();
