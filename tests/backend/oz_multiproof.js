// Independent check of backend/merkle.py's multiproofs: for each {values, indices} of stdin, builds
// the tree with OpenZeppelin's @openzeppelin/merkle-tree and prints getMultiProof(indices).
// stdin:  [{values: [[account, token, "amount"], ...], indices: [i, ...]}, ...]
// stdout: [{root, leaves, proof, proofFlags}, ...]
"use strict";
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const ENCODING = ["address", "address", "uint256"];
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const out = cases.map(({ values, indices }) => {
  const tree = StandardMerkleTree.of(values, ENCODING);
  const { leaves, proof, proofFlags } = tree.getMultiProof(indices);
  return { root: tree.root, leaves, proof, proofFlags };
});
fs.writeFileSync(1, JSON.stringify(out));
