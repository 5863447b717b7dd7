// Compiles the Solidity sources with solc-js into the artifacts walletgate and its tests
// load: contracts/*.sol (the devnet's own contracts) into walletgate/devnet_contracts/,
// contracts/test/*.sol (contracts only the tests deploy) into tests/contracts/.
// Run through compile.sh, which installs the pinned solc-js in a temporary directory.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

// py-evm's newest fork is Prague; newer EVM targets would emit opcodes it lacks.
const EVM_VERSION = "prague";
const ROOT = path.join(__dirname, "..");
const TARGETS = [
  { sources: __dirname, output: path.join(ROOT, "walletgate", "devnet_contracts") },
  { sources: path.join(__dirname, "test"), output: path.join(ROOT, "tests", "contracts") },
];

const settings = {
  evmVersion: EVM_VERSION,
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

function compile(sourcePath, outputDir) {
  const file = path.basename(sourcePath);
  const contract = path.basename(sourcePath, ".sol");
  const source = fs.readFileSync(sourcePath, "utf8");
  const input = { language: "Solidity", sources: { [file]: { content: source } }, settings };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  for (const e of output.errors || []) {
    console.error(e.formattedMessage);
  }
  if ((output.errors || []).some((e) => e.severity === "error")) {
    process.exit(1);
  }
  const compiled = output.contracts[file][contract];
  if (!compiled) {
    console.error(`${file} must define a contract named ${contract}`);
    process.exit(1);
  }
  const artifact = {
    contractName: contract,
    source: path.relative(ROOT, sourcePath),
    sourceSha256: crypto.createHash("sha256").update(source).digest("hex"),
    compiler: { name: "solc-js", version: solc.version() },
    settings: { evmVersion: EVM_VERSION, optimizer: settings.optimizer },
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
  };
  fs.mkdirSync(outputDir, { recursive: true });
  const outputPath = path.join(outputDir, `${contract}.json`);
  fs.writeFileSync(outputPath, `${JSON.stringify(artifact, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), outputPath)} (solc ${solc.version()})`);
}

for (const target of TARGETS) {
  if (!fs.existsSync(target.sources)) continue;
  for (const name of fs.readdirSync(target.sources).sort()) {
    if (name.endsWith(".sol")) compile(path.join(target.sources, name), target.output);
  }
}
