// The wallet: discovery (EIP-6963, falling back to window.ethereum), EIP-1193 requests, the
// chain check, calldata encoding, transactions with their receipts, and errors in one sentence.

const CHAIN_NAMES = { 1: "Ethereum mainnet", 11155111: "Sepolia", 31337: "the local development chain" };
const RECEIPT_POLL_MS = [250, 500, 1000, 2000];
const RECEIPT_GIVE_UP_MS = 15 * 60 * 1000;
const CHOSEN_KEY = "seedmarket.wallet";

/** An error whose message is already the one sentence to show the user. */
export class WalletError extends Error {}

const announced = new Map(); // uuid -> {info, provider}
window.addEventListener("eip6963:announceProvider", (event) => {
  const detail = event.detail;
  if (typeof detail?.info?.uuid !== "string" || typeof detail?.provider?.request !== "function") return;
  announced.set(detail.info.uuid, detail);
});
window.dispatchEvent(new Event("eip6963:requestProvider"));

export const chainName = (id) => (CHAIN_NAMES[id] ? `${CHAIN_NAMES[id]} (chain ${id})` : `chain ${id}`);
export const short = (address) => `${address.slice(0, 6)}…${address.slice(-4)}`;

// ----- calldata -----

const word = (hex) => hex.padStart(64, "0");
export const encodeUint = (value) => {
  const n = BigInt(value);
  if (n < 0n || n >= 1n << 256n) throw new WalletError("An amount is out of range; reload the page.");
  return word(n.toString(16));
};
export const encodeAddress = (address) => {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw new WalletError("An address is malformed; reload the page.");
  return word(address.slice(2).toLowerCase());
};
export const encodeBytes32 = (value) => {
  if (!/^0x[0-9a-fA-F]{64}$/.test(value)) throw new WalletError("A proof is malformed; reload the page.");
  return value.slice(2).toLowerCase();
};

/** Calldata: a 0x selector followed by already encoded 32-byte words. */
export const calldata = (selector, ...words) => selector + words.join("");

export function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ----- explaining failures -----

function revertData(error, depth = 0) {
  if (!error || depth > 4) return null;
  for (const candidate of [error.data, error.data?.data, error.data?.originalError?.data, error.error?.data]) {
    if (typeof candidate === "string" && /^0x[0-9a-fA-F]{8}/.test(candidate)) return candidate;
  }
  return revertData(error.cause ?? error.error ?? null, depth + 1);
}

/** The one sentence for a failed wallet request; `rejected` is said when the user declined. */
export function explain(error, config, rejected = "You rejected the request in your wallet; nothing was sent.") {
  if (error instanceof WalletError) return error.message;
  const code = error?.code ?? error?.error?.code;
  if (code === 4001) return rejected;
  if (code === 4100) return "Your wallet has not authorised this site; connect it to the store and try again.";
  if (code === 4900 || code === 4901) return "Your wallet is not connected to the chain; reconnect it and try again.";
  if (code === -32002) return "Your wallet is already waiting for an answer; open it to respond.";
  const data = revertData(error);
  if (data) {
    return config.errors[data.slice(0, 10).toLowerCase()] ?? "The contract refused the transaction; nothing was sent.";
  }
  const message = String(error?.message ?? error ?? "");
  if (/insufficient funds/i.test(message)) {
    return "Your wallet does not hold enough for this payment and its gas.";
  }
  const first = message.split(/[.\n]/)[0].trim().slice(0, 160);
  return first ? `Your wallet reported a problem: ${first}.` : "Your wallet reported a problem; try again.";
}

// ----- choosing and connecting a wallet -----

function pick(choices) {
  const dialog = document.getElementById("wallet-picker");
  const list = dialog.querySelector(".wallets");
  list.replaceChildren(
    ...choices.map(({ info }) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "submit";
      button.value = info.uuid;
      if (typeof info.icon === "string" && info.icon.startsWith("data:image/")) {
        const icon = document.createElement("img");
        icon.src = info.icon;
        icon.alt = "";
        icon.width = icon.height = 24;
        button.append(icon);
      }
      button.append(String(info.name || "Unnamed wallet"));
      item.append(button);
      return item;
    }),
  );
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(announced.get(dialog.returnValue) ?? null), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function chooseProvider() {
  const choices = [...announced.values()];
  const remembered = sessionStorage.getItem(CHOSEN_KEY);
  const known = choices.find(({ info }) => info.rdns === remembered || info.uuid === remembered);
  if (known) return known.provider;
  if (choices.length === 1) return choices[0].provider;
  if (choices.length > 1) {
    const chosen = await pick(choices);
    if (!chosen) throw new WalletError("No wallet was chosen; nothing was sent.");
    sessionStorage.setItem(CHOSEN_KEY, chosen.info.rdns || chosen.info.uuid);
    return chosen.provider;
  }
  if (typeof window.ethereum?.request === "function") return window.ethereum;
  throw new WalletError("No wallet found: install a browser wallet, then reload this page.");
}

/**
 * The accounts wallets already share with this site, without asking anything (`eth_accounts`
 * opens no prompt): [{provider, account}], lowercase accounts.
 */
export async function sharedAccounts() {
  const providers = [...announced.values()].map(({ provider }) => provider);
  if (!providers.length && typeof window.ethereum?.request === "function") providers.push(window.ethereum);
  const found = [];
  for (const provider of providers) {
    try {
      const accounts = await provider.request({ method: "eth_accounts", params: [] });
      for (const account of Array.isArray(accounts) ? accounts : []) {
        if (typeof account === "string") found.push({ provider, account: account.toLowerCase() });
      }
    } catch {
      // a wallet that will not say is a wallet that shares nothing
    }
  }
  return found;
}

/** A connected wallet: its EIP-1193 provider and the account it shares (lowercase). */
export class Wallet {
  constructor(provider, account, config) {
    this.provider = provider;
    this.account = account;
    this.config = config;
  }

  /** Ask the user for a wallet and an account. */
  static async connect(config) {
    const provider = await chooseProvider();
    const accounts = await provider.request({ method: "eth_requestAccounts" });
    if (!Array.isArray(accounts) || typeof accounts[0] !== "string") {
      throw new WalletError("Your wallet shared no account; unlock it and try again.");
    }
    return new Wallet(provider, accounts[0].toLowerCase(), config);
  }

  request(method, params = []) {
    return this.provider.request({ method, params });
  }

  async chainId() {
    return Number.parseInt(await this.request("eth_chainId"), 16);
  }

  /** Make sure the wallet is on the store's chain, asking it to switch when it is not. */
  async ensureChain(report) {
    const wanted = this.config.chainId;
    const current = await this.chainId();
    if (current === wanted) return;
    const wrong = `Your wallet is on ${chainName(current)}, but this store runs on ${chainName(wanted)}; switch networks in your wallet and try again.`;
    report(`Your wallet is on ${chainName(current)}; asking it to switch to ${chainName(wanted)}…`);
    try {
      await this.request("wallet_switchEthereumChain", [{ chainId: "0x" + wanted.toString(16) }]);
    } catch (error) {
      if (error?.code === 4902) {
        throw new WalletError(`Your wallet does not know ${chainName(wanted)}; add that network in your wallet and try again.`);
      }
      throw new WalletError(wrong);
    }
    if ((await this.chainId()) !== wanted) throw new WalletError(wrong);
  }

  /** eth_call against the latest block; the raw 0x result. */
  call(to, data) {
    return this.request("eth_call", [{ from: this.account, to, data }, "latest"]);
  }

  /** Send a transaction and wait until it is mined; `label` names it in every status line. */
  async send({ to, data, value = 0n }, label, report) {
    const tx = { from: this.account, to, data, value: "0x" + BigInt(value).toString(16) };
    try {
      await this.request("eth_call", [tx, "latest"]); // a revert is explained before the wallet asks
    } catch (error) {
      if (revertData(error)) throw new WalletError(explain(error, this.config));
    }
    report(`${label}: confirm the transaction in your wallet.`);
    const hash = await this.request("eth_sendTransaction", [tx]);
    report(`${label}: sent, waiting for it to be mined…`, hash);
    const receipt = await this.receipt(hash, label, report);
    if (receipt.status !== "0x1") {
      throw new WalletError(`${label} was reverted on chain: nothing changed except the gas spent.`);
    }
    return receipt;
  }

  async receipt(hash, label, report) {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      const receipt = await this.request("eth_getTransactionReceipt", [hash]);
      if (receipt) return receipt;
      if (Date.now() - started > RECEIPT_GIVE_UP_MS) {
        throw new WalletError(`${label} is still not mined; check your wallet's activity before trying again.`);
      }
      if (attempt === 20) report(`${label}: still waiting for the chain to include it…`, hash);
      await new Promise((done) => setTimeout(done, RECEIPT_POLL_MS[Math.min(attempt, RECEIPT_POLL_MS.length - 1)]));
    }
  }
}
