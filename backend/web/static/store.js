// The store's page actions: sign in and out, buy, claim rewards, withdraw sales.
// The server renders every page; this module only adds what needs the wallet, and reports each
// step in the page's aria-live status region.

import { toChecksumAddress } from "./keccak.js";
import {
  Wallet,
  WalletError,
  calldata,
  encodeAddress,
  encodeBytes32,
  encodeUint,
  explain,
  sharedAccounts,
  short,
  utf8Hex,
} from "./wallet.js";

const ETH = "0x0000000000000000000000000000000000000000";
const FLASH_KEY = "seedmarket.flash";
const SIGN_IN_LIFETIME_MS = 10 * 60 * 1000;
const STATEMENT = "Sign in to seedmarket to see your library, download your torrents and claim your rewards.";

const configBlock = document.getElementById("store-config");
const config = configBlock ? JSON.parse(configBlock.textContent) : null;
const statusLine = document.getElementById("status");

function report(message, txHash, kind = "progress") {
  statusLine.textContent = message;
  statusLine.dataset.kind = kind;
  if (txHash) statusLine.dataset.tx = txHash;
  else if (!message) delete statusLine.dataset.tx;
}
const done = (message, txHash) => report(message, txHash, "done");
const failed = (message) => report(message, undefined, "error");

/** A whole number of smallest units as a decimal string with thousands separators. */
export function formatUnits(amount, decimals) {
  const value = BigInt(amount);
  const scale = 10n ** BigInt(decimals);
  const whole = (value / scale).toLocaleString("en-US");
  const fraction = (value % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      ...options,
    });
  } catch {
    throw new WalletError("The store did not answer; check your connection and try again.");
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : `status ${response.status}`;
    throw new WalletError(`The store said: ${detail.replace(/\.$/, "")}.`);
  }
  return body;
}

function needConfig() {
  if (!config) throw new WalletError("The store cannot reach the chain right now; try again in a minute.");
  return config;
}

/** The wallet, checked to be the signed-in account when someone is signed in. */
async function walletFor(purpose) {
  const wallet = await Wallet.connect(needConfig());
  const signedIn = document.body.dataset.wallet;
  if (signedIn && signedIn.toLowerCase() !== wallet.account) {
    throw new WalletError(
      `Your wallet's account ${short(wallet.account)} is not the signed-in ${short(signedIn)}; switch accounts in your wallet or sign in again to ${purpose}.`,
    );
  }
  return wallet;
}

// ----- Sign-In with Ethereum (EIP-4361) -----

function siweMessage({ domain, address, uri, chainId, nonce, issuedAt, expiresAt }) {
  return [
    `${domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    STATEMENT,
    "",
    `URI: ${uri}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${issuedAt.toISOString()}`,
    `Expiration Time: ${expiresAt.toISOString()}`,
  ].join("\n");
}

async function signIn() {
  const wallet = await Wallet.connect(needConfig());
  const nonce = await api("/auth/nonce", { method: "POST" });
  if (nonce.domain !== window.location.host) {
    throw new WalletError(`This store signs in as ${nonce.domain}, but this page is ${window.location.host}; open the store at its own address.`);
  }
  const issuedAt = new Date();
  const message = siweMessage({
    domain: nonce.domain,
    address: toChecksumAddress(wallet.account),
    uri: nonce.uri,
    chainId: nonce.chainId,
    nonce: nonce.nonce,
    issuedAt,
    expiresAt: new Date(issuedAt.getTime() + SIGN_IN_LIFETIME_MS),
  });
  report("Sign the message in your wallet to sign in; it costs nothing and sends no transaction.");
  let signature;
  try {
    signature = await wallet.request("personal_sign", [utf8Hex(message), wallet.account]);
  } catch (error) {
    throw new WalletError(explain(error, config, "You declined to sign the message, so you are not signed in."));
  }
  const session = await api("/auth/session", { method: "POST", body: JSON.stringify({ message, signature }) });
  sessionStorage.setItem(FLASH_KEY, `Signed in as ${session.address}.`);
  window.location.reload();
}

async function signOut() {
  const response = await fetch("/auth/session", { method: "DELETE", credentials: "same-origin" }).catch(() => null);
  if (!response || (!response.ok && response.status !== 401)) {
    throw new WalletError("The store did not sign you out; try again in a moment.");
  } // 401: the session had already ended, so the visitor is signed out either way
  sessionStorage.setItem(FLASH_KEY, "Signed out.");
  window.location.reload();
}

// ----- buying -----

async function buy(button) {
  // The price, token and terms version shown on the page are what the buyer agrees to: the
  // contract refuses the purchase (TermsChanged) if the seller changed them since.
  const { product, token, price, terms } = button.dataset;
  const wallet = await walletFor("buy with it");
  await wallet.ensureChain(report);
  const contract = needConfig().contract;
  if (token !== ETH) {
    const allowance = await wallet.call(token, calldata(config.calls.allowance, encodeAddress(wallet.account), encodeAddress(contract)));
    if (BigInt(allowance === "0x" ? 0 : allowance) < BigInt(price)) {
      const approve = calldata(config.calls.approve, encodeAddress(contract), encodeUint(price));
      await wallet.send({ to: token, data: approve }, "Allowing the store to take the payment", report);
    }
  }
  const purchase = calldata(config.calls.purchase, encodeUint(product), encodeAddress(token), encodeUint(price), encodeUint(terms));
  const value = token === ETH ? BigInt(price) : 0n;
  const receipt = await wallet.send({ to: contract, data: purchase, value }, "Purchase", report);
  button.hidden = true;
  button.closest("section")?.querySelector("[data-bought]")?.removeAttribute("hidden");
  done(`Purchase confirmed in block ${Number.parseInt(receipt.blockNumber, 16)}; your library shows it within a few blocks.`, receipt.transactionHash);
}

/** The amount (first data word) of the contract's `event` in a receipt, or null. */
function paidIn(receipt, event) {
  const topic = config.events[event];
  const log = receipt.logs?.find(
    (entry) => entry.address?.toLowerCase() === config.contract.toLowerCase() && entry.topics?.[0] === topic,
  );
  return log ? BigInt(log.data.slice(0, 66)) : null;
}

// ----- rewards -----

async function claim(button) {
  const { account, token, symbol, decimals } = button.dataset;
  let proof;
  try {
    proof = await api(`/accounts/${account}/rewards/${token}/proof`);
  } catch {
    throw new WalletError("Nothing of this account is in the active rewards root yet; try again after the next epoch.");
  }
  const wallet = await Wallet.connect(needConfig());
  await wallet.ensureChain(report);
  const data = calldata(
    config.calls.claim,
    encodeAddress(account),
    encodeAddress(token),
    encodeUint(proof.cumulativeAmount),
    encodeUint(4 * 32), // where the proof array starts, after the four head words
    encodeUint(proof.proof.length),
    ...proof.proof.map(encodeBytes32),
  );
  const receipt = await wallet.send({ to: config.contract, data }, `Claim of ${symbol}`, report);
  const paid = paidIn(receipt, "Claimed") ?? 0n;
  await refreshRewards(account);
  done(`Claimed ${formatUnits(paid, Number(decimals))} ${symbol}, paid to ${short(account)}.`, receipt.transactionHash);
}

async function refreshRewards(account) {
  const fresh = await api(`/accounts/${account}/rewards`);
  for (const standing of fresh.tokens) {
    const row = document.querySelector(`tr[data-token="${standing.token.toLowerCase()}"]`);
    const button = row?.querySelector("[data-action=claim]");
    if (!row || !button) continue;
    const { symbol, decimals } = button.dataset;
    for (const field of ["earned", "claimable", "claimed", "pending"]) {
      const cell = row.querySelector(`[data-field=${field}]`);
      if (cell) cell.textContent = `${formatUnits(standing[field], Number(decimals))} ${symbol}`;
    }
    button.disabled = BigInt(standing.claimable) === 0n;
  }
}

// ----- seller balances -----

async function withdraw(button) {
  const { token, symbol, decimals } = button.dataset;
  const wallet = await walletFor("withdraw to it");
  await wallet.ensureChain(report);
  const data = calldata(config.calls.withdraw, encodeAddress(token));
  const receipt = await wallet.send({ to: config.contract, data }, `Withdrawal of ${symbol}`, report);
  const left = BigInt(await wallet.call(config.contract, calldata(config.calls.balanceOf, encodeAddress(wallet.account), encodeAddress(token))));
  const row = button.closest("tr");
  const cell = row?.querySelector("[data-field=balance]");
  if (cell) cell.textContent = `${formatUnits(left, Number(decimals))} ${symbol}`;
  button.disabled = left === 0n;
  const sent = paidIn(receipt, "Withdrawn") ?? 0n;
  done(`Withdrew ${formatUnits(sent, Number(decimals))} ${symbol} to your wallet.`, receipt.transactionHash);
}

// ----- wiring -----

const ACTIONS = { "sign-in": signIn, "sign-out": signOut, buy, claim, withdraw };

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  const action = button && ACTIONS[button.dataset.action];
  if (!action) return;
  event.preventDefault();
  // aria-busy, not disabled: a disabled button would drop keyboard focus mid-action.
  if (button.disabled || button.getAttribute("aria-busy") === "true") return;
  report(""); // a new action: the last one's outcome no longer applies
  button.setAttribute("aria-busy", "true");
  try {
    await action(button);
  } catch (error) {
    failed(explain(error, config ?? { errors: {} }));
  } finally {
    button.removeAttribute("aria-busy");
    if (button.disabled || button.hidden) statusLine.focus(); // keep keyboard users where the news is
  }
});

// A visitor who is not signed in but whose wallet already shares an account that owns this product
// (read from the chain, nothing signed) is told so before pressing Buy, which would be refused.
async function showOwnedByWallet() {
  const hint = document.querySelector("[data-owned-by-wallet]");
  const button = document.querySelector("button[data-action=buy]");
  if (!hint || !button || !config?.calls?.purchaseOf) return;
  const wanted = "0x" + config.chainId.toString(16);
  for (const { provider, account } of await sharedAccounts()) {
    try {
      if ((await provider.request({ method: "eth_chainId", params: [] })).toLowerCase() !== wanted) continue;
      const data = calldata(config.calls.purchaseOf, encodeUint(button.dataset.product), encodeAddress(account));
      const purchase = await provider.request({ method: "eth_call", params: [{ to: config.contract, data }, "latest"] });
      if (purchase && purchase !== "0x" && BigInt(purchase) !== 0n) {
        hint.querySelector("[data-owner]").textContent = toChecksumAddress(account);
        hint.hidden = false;
        return;
      }
    } catch {
      // the chain or the wallet did not answer: the page stays as the server rendered it
    }
  }
}

const flash = sessionStorage.getItem(FLASH_KEY);
if (flash) {
  sessionStorage.removeItem(FLASH_KEY);
  done(flash);
}
showOwnedByWallet().finally(() => {
  document.documentElement.dataset.owned = "checked";
});
document.documentElement.dataset.ready = "true";
