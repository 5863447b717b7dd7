// walletgate console: a light enhancement; every page works without it.
// - The approvals inbox polls each approval's status, marks a row another person decided
//   (its buttons disabled: the server would refuse it with 409 anyway) and offers new ones.
// - The approval page signs the owner's typed data with a wallet in this browser, if any.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (live) {
    const url = live.dataset.stateUrl;
    const shown = new Map();
    document.querySelectorAll("[data-approval]").forEach((el) => shown.set(el.dataset.approval, el));
    const poll = async () => {
      try {
        const reply = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (!reply.ok) return;
        const { statuses } = await reply.json();
        let fresh = 0;
        for (const [id, status] of Object.entries(statuses)) {
          const row = shown.get(id);
          if (row && row.dataset.status !== status && !row.classList.contains("stale")) {
            row.classList.add("stale");
            row.querySelectorAll("button").forEach((b) => { b.disabled = true; });
            const note = document.createElement("p");
            note.className = "alert";
            note.textContent = "Now " + status + ": decided elsewhere or expired.";
            row.prepend(note);
          } else if (!row && status === "pending") {
            fresh += 1;
          }
        }
        live.textContent = fresh ? fresh + " new approval(s) waiting: reload the page to see them." : "";
      } catch (e) { /* the next poll tries again */ }
    };
    setInterval(poll, 3000);
  }
  const sign = document.getElementById("sign-in-wallet");
  if (sign && window.ethereum) {
    sign.hidden = false;
    sign.addEventListener("click", async () => {
      const typed = document.getElementById("typed-data").value;
      const account = sign.dataset.approver;
      try {
        await window.ethereum.request({ method: "eth_requestAccounts" });
        const signature = await window.ethereum.request({
          method: "eth_signTypedData_v4", params: [account, typed],
        });
        document.getElementById("signature").value = signature;
      } catch (e) {
        alert("The wallet did not sign: " + (e && e.message ? e.message : e));
      }
    });
  }
})();
// The wallet sign-in page signs its EIP-4361 message with a wallet in this browser, if any.
(function () {
  const button = document.getElementById("siwe-sign");
  if (!button || !window.ethereum) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const message = document.getElementById("siwe-message").value;
    const address = document.getElementById("siwe-address").textContent.trim();
    try {
      await window.ethereum.request({ method: "eth_requestAccounts" });
      const hex = "0x" + Array.from(new TextEncoder().encode(message),
        (b) => b.toString(16).padStart(2, "0")).join("");
      const signature = await window.ethereum.request({
        method: "personal_sign", params: [hex, address],
      });
      document.getElementById("siwe-signature").value = signature;
    } catch (e) {
      alert("The wallet did not sign: " + (e && e.message ? e.message : e));
    }
  });
})();
