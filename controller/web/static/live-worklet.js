// communecast live voice: runs in the AudioWorklet. Low-passes and resamples the microphone
// to 16 kHz mono, and posts 20 ms frames of S16LE PCM (320 samples) with their RMS level.
class CcPcm16k extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000; // input samples per output sample
    this.t = 0; // position of the next output sample, in input samples, from `prev`
    this.prev = 0;
    this.lp = 0;
    this.alpha = 1 - Math.exp(-2 * Math.PI * 7000 / sampleRate); // one-pole low-pass at 7 kHz
    this.frame = new Int16Array(320);
    this.n = 0;
    this.sumsq = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || !input[0]) return true;
    const ch = input[0];
    const x = new Float32Array(ch.length + 1);
    x[0] = this.prev;
    for (let i = 0; i < ch.length; i++) {
      this.lp += this.alpha * (ch[i] - this.lp);
      x[i + 1] = this.lp;
    }
    while (this.t < ch.length) {
      const i = Math.floor(this.t);
      const f = this.t - i;
      const v = Math.max(-1, Math.min(1, x[i] * (1 - f) + x[i + 1] * f));
      this.frame[this.n++] = Math.round(v * 32767);
      this.sumsq += v * v;
      if (this.n === this.frame.length) {
        const pcm = this.frame.buffer;
        this.port.postMessage({ pcm: pcm, level: Math.sqrt(this.sumsq / this.n) }, [pcm]);
        this.frame = new Int16Array(320);
        this.n = 0;
        this.sumsq = 0;
      }
      this.t += this.step;
    }
    this.t -= ch.length;
    this.prev = x[ch.length];
    return true;
  }
}

registerProcessor("cc-pcm16k", CcPcm16k);
