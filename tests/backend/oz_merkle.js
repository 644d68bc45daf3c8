// Independent check of backend/merkle.py: builds each tree of stdin with OpenZeppelin's
// @openzeppelin/merkle-tree and prints its root, every proof, and its dump.
// stdin:  [[[account, token, "amount"], ...], ...]   stdout: [{root, proofs, dump}, ...]
"use strict";
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const ENCODING = ["address", "address", "uint256"];
const trees = JSON.parse(fs.readFileSync(0, "utf8"));
const out = trees.map((values) => {
  const tree = StandardMerkleTree.of(values, ENCODING);
  return {
    root: tree.root,
    proofs: values.map((_, i) => tree.getProof(i)),
    dump: tree.dump(),
  };
});
fs.writeFileSync(1, JSON.stringify(out));
