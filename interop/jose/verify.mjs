// Verifies a sessiond access token with the jose package, knowing nothing of
// sessiond but its JWKS URL and issuer:
//
//   node verify.mjs <jwks url> <token> [issuer]
//
// Prints {"sub": ..., "sid": ...} and exits 0 when the token verifies; prints
// the reason to stderr and exits 1 otherwise.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksURL, token, issuer = 'sessiond'] = process.argv.slice(2);
if (!jwksURL || !token) {
  console.error('usage: node verify.mjs <jwks url> <token> [issuer]');
  process.exit(2);
}

try {
  const jwks = createRemoteJWKSet(new URL(jwksURL));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience: issuer,
    algorithms: ['EdDSA'],
    typ: 'at+jwt',
    requiredClaims: ['sub', 'sid', 'exp', 'iat', 'jti'],
  });
  console.log(JSON.stringify({ sub: payload.sub, sid: payload.sid, kid: protectedHeader.kid }));
} catch (err) {
  console.error(`${err.code ?? 'ERROR'}: ${err.message}`);
  process.exit(1);
}
