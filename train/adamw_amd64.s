#include "textflag.h"

// func adamAVX2(pp, gp, mp, vp *float32, n int, c *[8]float32)
// One AdamW update of n (a multiple of 8) float32 elements, in the exact
// operation order of adamStep.run32 (no fused multiply-add: every product
// and sum rounded to float32 as the Go loop does). c holds b1, 1-b1, b2,
// 1-b2, decay, step, bc2, eps.
TEXT ·adamAVX2(SB), NOSPLIT, $0-48
	MOVQ pp+0(FP), DI
	MOVQ gp+8(FP), SI
	MOVQ mp+16(FP), R8
	MOVQ vp+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	VBROADCASTSS 16(AX), Y12
	VBROADCASTSS 20(AX), Y13
	VBROADCASTSS 24(AX), Y14
	VBROADCASTSS 28(AX), Y15
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS (SI), Y0     // g
	VMOVUPS (R8), Y1
	VMULPS  Y8, Y1, Y1   // b1*m
	VMULPS  Y9, Y0, Y2   // (1-b1)*g
	VADDPS  Y2, Y1, Y1   // m' = b1*m + (1-b1)*g
	VMOVUPS Y1, (R8)
	VMOVUPS (R9), Y3
	VMULPS  Y10, Y3, Y3  // b2*v
	VMULPS  Y11, Y0, Y4  // (1-b2)*g
	VMULPS  Y0, Y4, Y4   // ((1-b2)*g)*g
	VADDPS  Y4, Y3, Y3   // v'
	VMOVUPS Y3, (R9)
	VSQRTPS Y3, Y5
	VDIVPS  Y14, Y5, Y5  // sqrt(v')/bc2
	VADDPS  Y15, Y5, Y5  // + eps
	VMULPS  Y1, Y13, Y6  // step*m'
	VDIVPS  Y5, Y6, Y6   // (step*m')/(sqrt(v')/bc2+eps)
	VMOVUPS (DI), Y7
	VMULPS  Y12, Y7, Y7  // p*decay
	VSUBPS  Y6, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET
