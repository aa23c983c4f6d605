// Package blasfix gives OpenBLAS the kernels the CPU supports when its
// detection got the CPU wrong (model.BLASCoreFix).
package blasfix

import (
	"fmt"
	"os"
	"syscall"

	"smtrain/model"
)

// Exec re-executes the running program with OPENBLAS_CORETYPE set when
// model.BLASCoreFix asks for it (OpenBLAS reads the variable only when it
// loads, before main). It returns nil when no fix is needed, and an error
// when the re-execution failed (the program can go on, slower). Call it
// first thing in main.
func Exec() error {
	core := model.BLASCoreFix()
	if core == "" {
		return nil
	}
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, os.Args, append(os.Environ(), "OPENBLAS_CORETYPE="+core))
	}
	return fmt.Errorf("OpenBLAS chose %s kernels on a CPU with AVX2; rerunning with OPENBLAS_CORETYPE=%s failed (%v): set it yourself for full speed", model.BLASCore(), core, err)
}
