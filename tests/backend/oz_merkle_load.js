// Loads a dump written by backend/merkle.py with StandardMerkleTree.load (which validates every
// node) and prints the root and the proof of each value, so the Python side can compare.
"use strict";
const fs = require("fs");
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

const tree = StandardMerkleTree.load(JSON.parse(fs.readFileSync(0, "utf8")));
const proofs = [];
for (const [i] of tree.entries()) proofs.push(tree.getProof(i));
fs.writeFileSync(1, JSON.stringify({ root: tree.root, proofs }));
