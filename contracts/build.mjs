// Compile src/TicketNFT.sol with the pinned solc (npm `solc`, i.e. solcjs) through its standard-JSON
// interface, and write ABI + bytecode where the Python package ships them. Run through ./build.sh.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const here = dirname(fileURLToPath(import.meta.url));
const SOURCE = "src/TicketNFT.sol";
const CONTRACT = "TicketNFT";
const OUT = resolve(here, "../src/ticketguard/chain/artifacts/TicketNFT.json");
// Cancun: the oldest fork OpenZeppelin 5.7 compiles for (it uses MCOPY and transient storage), and one
// every current chain, anvil and py-evm run.
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  // No metadata hash: the same source gives the same bytecode on every machine, so the committed
  // artifact can be checked against a rebuild.
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

function findImports(path) {
  for (const base of [here, join(here, "node_modules")]) {
    try {
      return { contents: readFileSync(join(base, path), "utf8") };
    } catch {
      // try the next base
    }
  }
  return { error: `import not found: ${path}` };
}

const source = readFileSync(join(here, SOURCE), "utf8");
const input = { language: "Solidity", sources: { [SOURCE]: { content: source } }, settings: SETTINGS };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
// OpenZeppelin's own warnings (e.g. the transient-storage note on its reentrancy guard) are known and
// reviewed upstream; ours are printed.
let hidden = 0;
for (const message of output.errors ?? []) {
  const file = message.sourceLocation?.file ?? "";
  if (message.severity !== "error" && file.startsWith("@openzeppelin/")) hidden += 1;
  else console.error(message.formattedMessage);
}
if (hidden > 0) console.error(`(${hidden} warning(s) from @openzeppelin/contracts not shown)`);
if (errors.length > 0) process.exit(1);

const compiled = output.contracts[SOURCE][CONTRACT];
const ozVersion = JSON.parse(readFileSync(join(here, "node_modules/@openzeppelin/contracts/package.json"), "utf8")).version;
const artifact = {
  contractName: CONTRACT,
  sourceName: SOURCE,
  sourceSha256: createHash("sha256").update(source).digest("hex"),
  compiler: { name: "solc", version: solc.version(), settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer } },
  openzeppelin: ozVersion,
  abi: compiled.abi,
  bytecode: "0x" + compiled.evm.bytecode.object,
  deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, JSON.stringify(artifact, null, 2) + "\n");
console.log(`wrote ${OUT} (solc ${solc.version()}, ${compiled.evm.deployedBytecode.object.length / 2} bytes deployed)`);
