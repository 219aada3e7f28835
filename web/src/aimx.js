/*
 * aimx.js -- AimX requests over MQTT v5 request/response (docs/protocol.md).
 *
 * A request goes to $CONTROL/aimdb/v1 (aimdb-bridge: its request_topic,
 * ?request= in config.js) with this page's Response Topic and a
 * Correlation Data naming the request; the plugin publishes the reply to
 * that topic, to this client only, with the same Correlation Data.  Each
 * request returns a promise that settles exactly once: with the reply's
 * result, or with an AimxError carrying the reply's error code -- or our own
 * `timeout` / `disconnected` when no reply can come, so a view never waits
 * forever on a lost reply.
 */
export class AimxError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const text = new TextDecoder();

/*
 * Requests to `requestTopic` through `client` (a connected mqtt.js v5 client).  The caller
 * subscribes `replyTopic` before the first request and calls failAll when
 * the connection drops: a reply to a request sent on a dead connection
 * would never arrive.
 */
export function createAimxClient(client, requestTopic, replyTopic, timeoutMs = 10000) {
  const pending = new Map(); /* correlation text -> {resolve, reject, timer} */
  let nextId = 1;

  function settle(correlation, reply) {
    const call = pending.get(correlation);
    if (!call) return; /* late reply to a request that already timed out */
    pending.delete(correlation);
    clearTimeout(call.timer);
    if (reply && typeof reply === 'object' && 'result' in reply) call.resolve(reply.result);
    else if (reply && typeof reply.error === 'object' && reply.error !== null)
      call.reject(new AimxError(String(reply.error.code), String(reply.error.message)));
    else call.reject(new AimxError('bad_reply', 'the reply has neither "result" nor "error"'));
  }

  client.on('message', (topic, payload, packet) => {
    if (topic !== replyTopic) return;
    const correlation = packet.properties?.correlationData;
    let reply;
    try {
      reply = JSON.parse(text.decode(payload));
    } catch {
      reply = null;
    }
    /* Correlation Data is the contract; the echoed id is the fallback. */
    const key = correlation ? text.decode(correlation) : String(reply?.id);
    settle(key, reply);
  });

  return {
    request(method, params) {
      const id = nextId++;
      const correlation = String(id);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(correlation);
          reject(new AimxError('timeout', `no reply to ${method} within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        pending.set(correlation, { resolve, reject, timer });
        client.publish(requestTopic, JSON.stringify({ id, method, params }), {
          qos: 0,
          properties: { responseTopic: replyTopic, correlationData: correlation },
        });
      });
    },

    failAll(why) {
      for (const [correlation, call] of pending) {
        clearTimeout(call.timer);
        call.reject(new AimxError('disconnected', why));
        pending.delete(correlation);
      }
    },
  };
}
