// Google's JavaScript SDK (@google/genai) plays five conversations against `speakerd emulator`:
// a voice turn, a text turn, a tool call with its response, an ephemeral-token session and a
// goAway followed by resumption. It prints one JSON line per case; tests/emulator/test_clients.py
// checks them. Plain JavaScript, no build step.
//
// Environment: EMU_BASE_URL (https://127.0.0.1:PORT), EMU_GOAWAY_BASE_URL (an emulator with a short
// connection lifetime), EMU_API_KEY, EMU_SPEECH_PCM (16 kHz s16le mono speech to send),
// NODE_EXTRA_CA_CERTS (the emulator's CA; Node reads it at start-up).
import { readFileSync } from 'node:fs';
import { GoogleGenAI, Modality } from '@google/genai';

const MODEL = 'gemini-3.8-live';
const WAIT_MS = 30000;
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

/** A Live session whose messages can be awaited in order. */
async function open(ai, config = {}) {
  const queue = [];
  const waiters = [];
  let closed = null;
  const wake = () => { while (waiters.length) waiters.shift()(); };
  const session = await ai.live.connect({
    model: MODEL,
    config: {
      responseModalities: [Modality.AUDIO],
      inputAudioTranscription: {},
      outputAudioTranscription: {},
      ...config,
    },
    callbacks: {
      onmessage: (m) => { queue.push(m); wake(); },
      onerror: (e) => { closed = closed ?? { code: 1006, reason: String(e?.message ?? e) }; wake(); },
      onclose: (e) => { closed = closed ?? { code: e.code, reason: e.reason }; wake(); },
    },
  });
  async function next() {
    const deadline = Date.now() + WAIT_MS;
    while (!queue.length) {
      if (closed) throw new Error(`closed ${closed.code} ${closed.reason}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message within the deadline');
      await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, left); });
    }
    return queue.shift();
  }
  return { session, next, closedInfo: () => closed };
}

/** Read to the end of a turn (or to a tool call); what was heard, said and called. */
async function collect(s, until = 'turnComplete', seen = {}) {
  const out = { input: '', output: '', audioBytes: 0, toolCalls: [], flags: [], handle: null, goAway: null };
  for (;;) {
    const m = await s.next();
    const sc = m.serverContent;
    if (m.sessionResumptionUpdate?.newHandle) out.handle = m.sessionResumptionUpdate.newHandle;
    if (m.goAway) out.goAway = m.goAway.timeLeft;
    if (m.toolCall) out.toolCalls.push(...(m.toolCall.functionCalls ?? []));
    if (sc) {
      for (const p of sc.modelTurn?.parts ?? []) {
        if (p.inlineData?.data) out.audioBytes += Buffer.from(p.inlineData.data, 'base64').length;
      }
      out.input += sc.inputTranscription?.text ?? '';
      out.output += sc.outputTranscription?.text ?? '';
      for (const f of ['generationComplete', 'interrupted', 'turnComplete']) if (sc[f]) out.flags.push(f);
    }
    if (until === 'toolCall' && out.toolCalls.length) return out;
    if (until === 'goAway' && out.goAway) return out;
    if (until === 'turnComplete' && out.flags.includes('turnComplete')) return out;
    if (seen.handleAfterTurn && out.flags.includes('turnComplete') && out.handle) return out;
  }
}

const report = (name, result) => console.log(JSON.stringify({ case: name, ...result }));

async function voiceTurn(ai) {
  const s = await open(ai);
  const pcm = readFileSync(env('EMU_SPEECH_PCM'));
  const chunk = 3200; // 100 ms, as Google's guides suggest
  for (let i = 0; i < pcm.length; i += chunk) {
    s.session.sendRealtimeInput({
      audio: { data: pcm.subarray(i, i + chunk).toString('base64'), mimeType: 'audio/pcm;rate=16000' },
    });
  }
  const turn = await collect(s);
  s.session.close();
  return turn;
}

async function textTurn(ai) {
  const s = await open(ai);
  s.session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'hello there' }] }], turnComplete: true });
  const turn = await collect(s);
  s.session.close();
  return turn;
}

async function toolCall(ai) {
  const tools = [{
    functionDeclarations: [{
      name: 'set_volume',
      description: 'Set the speaker volume',
      behavior: 'BLOCKING',
      parameters: { type: 'OBJECT', properties: { level: { type: 'INTEGER' } }, required: ['level'] },
    }],
  }];
  const s = await open(ai, { tools });
  s.session.sendRealtimeInput({ text: 'set the volume to 5' });
  const call = await collect(s, 'toolCall');
  const fc = call.toolCalls[0];
  s.session.sendToolResponse({ functionResponses: [{ id: fc.id, name: fc.name, response: { result: '5' } }] });
  const after = await collect(s);
  s.session.close();
  return { call: { name: fc.name, args: fc.args }, ...after };
}

async function ephemeralToken(baseUrl, apiKey) {
  const admin = new GoogleGenAI({ apiKey, httpOptions: { baseUrl, apiVersion: 'v1alpha' } });
  const now = Date.now();
  const token = await admin.authTokens.create({
    config: {
      uses: 1,
      expireTime: new Date(now + 30 * 60 * 1000).toISOString(),
      newSessionExpireTime: new Date(now + 60 * 1000).toISOString(),
      httpOptions: { apiVersion: 'v1alpha' },
    },
  });
  const device = new GoogleGenAI({ apiKey: token.name, httpOptions: { baseUrl, apiVersion: 'v1alpha' } });
  const turn = await textTurn(device);
  return { tokenPrefix: token.name.split('/')[0], ...turn };
}

async function goAwayAndResume(baseUrl, apiKey) {
  const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl, apiVersion: 'v1beta' } });
  const first = await open(ai, { sessionResumption: {} });
  first.session.sendRealtimeInput({ text: 'hello there' });
  const one = await collect(first);
  let handle = one.handle;
  for (;;) { // keep the newest handle until the goAway comes
    const m = await first.next();
    if (m.sessionResumptionUpdate?.newHandle) handle = m.sessionResumptionUpdate.newHandle;
    if (m.goAway) { one.goAway = m.goAway.timeLeft; break; }
  }
  const second = await open(ai, { sessionResumption: { handle } });
  first.session.close(); // after the new connection is up, as a careful client does
  second.session.sendRealtimeInput({ text: 'set the volume to 5' });
  const two = await collect(second);
  second.session.close();
  return { goAway: one.goAway, first: one.output, resumedWith: handle, second: two.output, flags: two.flags, audioBytes: two.audioBytes };
}

async function main() {
  const baseUrl = env('EMU_BASE_URL');
  const apiKey = env('EMU_API_KEY');
  const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl, apiVersion: 'v1beta' } });
  const cases = [
    ['voice', () => voiceTurn(ai)],
    ['text', () => textTurn(ai)],
    ['tool', () => toolCall(ai)],
    ['token', () => ephemeralToken(baseUrl, apiKey)],
    ['goaway', () => goAwayAndResume(env('EMU_GOAWAY_BASE_URL'), apiKey)],
  ];
  let failed = 0;
  for (const [name, run] of cases) {
    try {
      report(name, { ok: true, ...(await run()) });
    } catch (e) {
      failed += 1;
      report(name, { ok: false, error: String(e?.stack ?? e) });
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
