// Keccak-256 (the pre-standard SHA-3 padding Ethereum uses) and EIP-55 checksummed addresses.
// Sign-In with Ethereum needs the checksummed address, and wallets hand out lowercase ones.
// BigInt lanes keep it short; it hashes a few dozen bytes per sign-in, so speed does not matter.

const MASK = (1n << 64n) - 1n;
const RATE = 136; // bytes: 1600-bit state minus 2 * 256-bit capacity

// Rotation offsets of lane (x, y), indexed x + 5y (Keccak reference, rho step).
const ROTATIONS = [
  0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14,
].map(BigInt);

// Round constants from the spec's LFSR, so no table of 24 magic numbers can hold a typo.
const ROUND_CONSTANTS = (() => {
  const constants = [];
  let lfsr = 1;
  for (let round = 0; round < 24; round++) {
    let value = 0n;
    for (let j = 0; j < 7; j++) {
      if (lfsr & 1) value |= 1n << BigInt((1 << j) - 1);
      lfsr = lfsr & 0x80 ? ((lfsr << 1) ^ 0x71) & 0xff : lfsr << 1;
    }
    constants.push(value);
  }
  return constants;
})();

const rotl = (lane, n) => (n === 0n ? lane : ((lane << n) | (lane >> (64n - n))) & MASK);

function permute(state) {
  const c = new Array(5);
  const b = new Array(25);
  for (const constant of ROUND_CONSTANTS) {
    for (let x = 0; x < 5; x++) {
      c[x] = state[x] ^ state[x + 5] ^ state[x + 10] ^ state[x + 15] ^ state[x + 20];
    }
    for (let x = 0; x < 5; x++) {
      const d = c[(x + 4) % 5] ^ rotl(c[(x + 1) % 5], 1n);
      for (let y = 0; y < 25; y += 5) state[x + y] ^= d;
    }
    for (let x = 0; x < 5; x++) {
      for (let y = 0; y < 5; y++) {
        b[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(state[x + 5 * y], ROTATIONS[x + 5 * y]);
      }
    }
    for (let y = 0; y < 25; y += 5) {
      for (let x = 0; x < 5; x++) {
        state[x + y] = b[x + y] ^ (~b[((x + 1) % 5) + y] & MASK & b[((x + 2) % 5) + y]);
      }
    }
    state[0] ^= constant;
  }
}

/** Keccak-256 of `bytes` (a Uint8Array), as a Uint8Array of 32 bytes. */
export function keccak256(bytes) {
  const padded = new Uint8Array((Math.floor(bytes.length / RATE) + 1) * RATE);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const state = new Array(25).fill(0n);
  for (let offset = 0; offset < padded.length; offset += RATE) {
    for (let i = 0; i < RATE / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[offset + 8 * i + k]);
      state[i] ^= lane;
    }
    permute(state);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    for (let k = 0; k < 8; k++) out[8 * i + k] = Number((state[i] >> BigInt(8 * k)) & 0xffn);
  }
  return out;
}

/** The EIP-55 checksummed form of a 0x-prefixed address; throws on anything else. */
export function toChecksumAddress(address) {
  if (typeof address !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(address)) {
    throw new Error("not an address");
  }
  const lower = address.slice(2).toLowerCase();
  const hash = keccak256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1] >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    out += nibble >= 8 ? lower[i].toUpperCase() : lower[i];
  }
  return out;
}
