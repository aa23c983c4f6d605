package gguf

// maxHalf is the largest finite IEEE 754 binary16 value.
const maxHalf = 65504.0
