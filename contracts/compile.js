// Compiles WalletgateTestToken.sol with solc-js into the artifact walletgate loads.
// Run through compile.sh, which installs the pinned solc-js in a temporary directory.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const CONTRACT = "WalletgateTestToken";
// py-evm's newest fork is Prague; newer EVM targets would emit opcodes it lacks.
const EVM_VERSION = "prague";

const sourcePath = path.join(__dirname, `${CONTRACT}.sol`);
const outputPath = path.join(__dirname, "..", "walletgate", "devnet_contracts", `${CONTRACT}.json`);
const source = fs.readFileSync(sourcePath, "utf8");

const settings = {
  evmVersion: EVM_VERSION,
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};
const input = {
  language: "Solidity",
  sources: { [`${CONTRACT}.sol`]: { content: source } },
  settings,
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  console.error(e.formattedMessage);
}
if (errors.length > 0) {
  process.exit(1);
}

const compiled = output.contracts[`${CONTRACT}.sol`][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  source: `contracts/${CONTRACT}.sol`,
  sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
  compiler: { name: "solc-js", version: solc.version() },
  settings: { evmVersion: EVM_VERSION, optimizer: settings.optimizer },
  abi: compiled.abi,
  bytecode: `0x${compiled.evm.bytecode.object}`,
};
fs.writeFileSync(outputPath, `${JSON.stringify(artifact, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), outputPath)} (solc ${solc.version()})`);
