// messaging-api-messenger, unchanged but for its `origin`, sending through Herald.
// Run by tests/api/clients.rs: HERALD_ORIGIN, HERALD_TOKEN, OPEN_PSID, CLOSED_PSID in the
// environment; prints one JSON line with what the library returned and what it threw.
'use strict';

const { MessengerClient } = require('messaging-api-messenger');

async function main() {
  const client = new MessengerClient({
    accessToken: process.env.HERALD_TOKEN,
    // The library computes appsecret_proof from this; Herald accepts it and ignores it.
    appSecret: 'the-app-secret-the-library-knows',
    origin: process.env.HERALD_ORIGIN,
    version: '21.0',
  });
  const out = {};
  out.sent = await client.sendText(process.env.OPEN_PSID, 'Your teapot ships today.', {
    messagingType: 'RESPONSE',
  });
  try {
    await client.sendText(process.env.CLOSED_PSID, 'Anything else?', { messagingType: 'RESPONSE' });
    out.refused = null;
  } catch (err) {
    out.refused = {
      status: err.response && err.response.status,
      error: err.response && err.response.data && err.response.data.error,
      message: err.message,
    };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
