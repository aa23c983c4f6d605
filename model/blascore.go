package model

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// preAVX2Cores are OpenBLAS core types without AVX2/FMA kernels, what its
// detection falls back to on a CPU model it does not know. Seen on a
// virtual machine whose AVX-512 Xeon OpenBLAS 0.3.21 reported as
// "Prescott", where training ran about 4x slower than with
// OPENBLAS_CORETYPE=SkylakeX (results/memory).
var preAVX2Cores = map[string]bool{
	"prescott": true, "core2": true, "penryn": true, "dunnington": true, "nehalem": true,
	"sandybridge": true, "atom": true, "katmai": true, "coppermine": true, "northwood": true,
	"banias": true, "opteron": true, "opteron(sse3)": true, "barcelona": true, "bobcat": true,
}

// BLASCoreFix returns the OPENBLAS_CORETYPE that gives OpenBLAS the
// kernels this CPU supports when its detection chose a core type without
// AVX2 on a CPU that has it; "" when the detection is fine, the user set
// OPENBLAS_CORETYPE, or the BLAS is not OpenBLAS. OpenBLAS reads the
// variable once, when it loads: a command applies the fix by re-executing
// itself with the variable set.
func BLASCoreFix() string {
	if os.Getenv("OPENBLAS_CORETYPE") != "" {
		return ""
	}
	x := cpu.X86
	return coreFix(BLASCore(), x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL, x.HasAVX2 && x.HasFMA)
}

// coreFix is BLASCoreFix's rule: the core type to ask for, given the one
// OpenBLAS chose and the CPU's vector features.
func coreFix(core string, avx512, avx2 bool) string {
	if !preAVX2Cores[strings.ToLower(core)] {
		return ""
	}
	switch {
	case avx512:
		return "SkylakeX"
	case avx2:
		return "Haswell"
	}
	return ""
}
