// ethers.js against walletgate, the way an agent toolkit uses it: look the account up
// with provider.getSigner(address) (which calls eth_accounts) and send a transfer.
// Usage: node get_signer.mjs RPC_URL FROM TO VALUE_WEI
// Prints one JSON line: {"accounts": [...], "signer": "0x…", "hash": "0x…"} or {"error": "…"}.
import { JsonRpcProvider } from "ethers";

const [url, from, to, value] = process.argv.slice(2);
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, batchMaxCount: 1 });
try {
  const accounts = await provider.send("eth_accounts", []);
  const signer = await provider.getSigner(from);
  const tx = await signer.sendTransaction({ to, value: BigInt(value) });
  console.log(JSON.stringify({ accounts, signer: await signer.getAddress(), hash: tx.hash }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.shortMessage || error.message) }));
} finally {
  provider.destroy();
}
