// A test wallet injected before the page's own scripts: EIP-1193 providers for anvil's unlocked
// development accounts, announced over EIP-6963. Every request goes to anvil's JSON-RPC with
// fetch, so anvil signs personal_sign and eth_sendTransaction; the test steers only what a user
// would decide (which chain the wallet is on, whether to accept a switch, a signature, a transaction).
// `SETUP` is prepended by the test: {rpc, wallets: [{account, name, rdns, uuid}], chainId, rejectSwitch, rejectSign}.
(() => {
  const state = {
    chainId: SETUP.chainId ?? null, // null: whatever anvil says
    rejectSwitch: Boolean(SETUP.rejectSwitch),
    rejectSign: Boolean(SETUP.rejectSign),
    rejectSend: false,
    calls: [],
  };
  window.__testWallet = state;
  let nextId = 1;

  const rpcError = (code, message, data) => Object.assign(new Error(message), { code, data });

  async function forward(method, params) {
    const response = await fetch(SETUP.rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
    });
    const answer = await response.json();
    if (answer.error) throw rpcError(answer.error.code, answer.error.message, answer.error.data);
    return answer.result;
  }

  function makeProvider(account) {
    return {
      async request({ method, params = [] }) {
        state.calls.push({ account, method });
        switch (method) {
          case "eth_requestAccounts":
          case "eth_accounts":
            return [account];
          case "eth_chainId":
            return state.chainId ?? forward(method, params);
          case "wallet_switchEthereumChain":
            if (state.rejectSwitch) throw rpcError(4001, "User rejected the request.");
            state.chainId = null;
            return null;
          case "personal_sign":
            if (state.rejectSign) throw rpcError(4001, "User rejected the request.");
            return forward(method, params);
          case "eth_sendTransaction":
            if (state.rejectSend) throw rpcError(4001, "User denied transaction signature.");
            return forward(method, params);
          default:
            return forward(method, params);
        }
      },
      on() {},
      removeListener() {},
    };
  }

  const wallets = SETUP.wallets.map((wallet) => ({
    info: Object.freeze({
      uuid: wallet.uuid,
      name: wallet.name,
      rdns: wallet.rdns,
      icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'%3E%3Crect width='8' height='8' fill='%23386'/%3E%3C/svg%3E",
    }),
    provider: makeProvider(wallet.account),
  }));
  const announce = () => {
    for (const detail of wallets) {
      window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze(detail) }));
    }
  };
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();
