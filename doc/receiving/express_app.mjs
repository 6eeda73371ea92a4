// An Express receiver of twisted_hooks deliveries:
//   npm install express standardwebhooks
//   WEBHOOK_SECRET=whsec_... node express_app.mjs
import { createHmac, timingSafeEqual } from "node:crypto";
import express from "express";
import { Webhook } from "standardwebhooks";

const secret = process.env.WEBHOOK_SECRET; // the subscription's secret, whsec_...
const webhook = new Webhook(secret);
const app = express();

// express.raw() keeps the body as the bytes received (a Buffer). Never express.json() on
// this route: JSON parsed and serialised again is not the same bytes, and its signature
// does not match.
app.post("/webhooks/orders", express.raw({ type: "*/*" }), (req, res) => {
  let payload;
  try {
    payload = webhook.verify(req.body, req.headers); // checks the timestamp too
  } catch (error) {
    return res.status(400).send("invalid signature");
  }
  console.log(req.get("Hook-Event"), payload);
  res.sendStatus(204);
});

// Thorn's check, for receivers written for Thorn: base64 of the HMAC of the raw body,
// keyed with the secret's text ("whsec_" included). It has no timestamp: prefer the above.
export function hookHmacValid(body, header, digest = "sha256") {
  const expected = Buffer.from(createHmac(digest, secret).update(body).digest("base64"));
  const given = Buffer.from(header ?? "");
  return expected.length === given.length && timingSafeEqual(expected, given);
}

app.listen(3000, "127.0.0.1");
