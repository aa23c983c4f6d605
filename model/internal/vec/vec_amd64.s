#include "textflag.h"

// Offsets of the broadcast constants in geluConsts (32 bytes each).
#define K_S      0
#define K_C3     32
#define K_CLAMP  64
#define K_NCLAMP 96
#define K_A0     128
#define K_A1     160
#define K_A2     192
#define K_A3     224
#define K_A4     256
#define K_A5     288
#define K_A6     320
#define K_B0     352
#define K_B1     384
#define K_B2     416
#define K_B3     448
#define K_HALF   480
#define K_ONE    512
#define K_3C3    544
#define K_HS     576

// func geluFwdAVX2(x, y, th *float32, n int, k *[21][8]float32)
TEXT ·geluFwdAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ th+16(FP), DX
	MOVQ n+24(FP), BX
	MOVQ k+32(FP), CX
	SHRQ $3, BX
	JZ   fdone

floop:
	VMOVUPS (SI), Y0                // v
	VMULPS  Y0, Y0, Y1              // v²
	VMULPS  Y0, Y1, Y1              // v³
	VFMADD132PS K_C3(CX), Y0, Y1    // v + 0.044715·v³
	VMULPS  K_S(CX), Y1, Y1         // u
	VMINPS  K_CLAMP(CX), Y1, Y1
	VMAXPS  K_NCLAMP(CX), Y1, Y1
	VMULPS  Y1, Y1, Y2              // u²
	VMULPS  Y2, Y2, Y3              // u⁴
	VMOVUPS K_A1(CX), Y4
	VFMADD213PS K_A0(CX), Y2, Y4    // p01 = a0 + a1·u²
	VMOVUPS K_A3(CX), Y5
	VFMADD213PS K_A2(CX), Y2, Y5    // p23 = a2 + a3·u²
	VMOVUPS K_A5(CX), Y6
	VFMADD213PS K_A4(CX), Y2, Y6    // p45 = a4 + a5·u²
	VMOVUPS K_A6(CX), Y7
	VFMADD213PS Y6, Y3, Y7          // p45 + a6·u⁴
	VFMADD231PS Y5, Y3, Y4          // p01 + p23·u⁴
	VMULPS  Y3, Y3, Y8              // u⁸
	VFMADD231PS Y8, Y7, Y4          // p
	VMOVUPS K_B1(CX), Y5
	VFMADD213PS K_B0(CX), Y2, Y5    // b0 + b1·u²
	VMOVUPS K_B3(CX), Y6
	VFMADD213PS K_B2(CX), Y2, Y6    // b2 + b3·u²
	VFMADD231PS Y6, Y3, Y5          // q
	VMULPS  Y4, Y1, Y1              // u·p
	VDIVPS  Y5, Y1, Y1              // t = u·p/q
	VMOVUPS Y1, (DX)
	VADDPS  K_ONE(CX), Y1, Y1       // 1 + t
	VMULPS  K_HALF(CX), Y0, Y0      // ½v
	VMULPS  Y1, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ BX
	JNZ  floop

fdone:
	VZEROUPPER
	RET

// func geluBwdAVX2(x, th, dy, dx *float32, n int, acc int, k *[21][8]float32)
TEXT ·geluBwdAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), SI
	MOVQ th+8(FP), R8
	MOVQ dy+16(FP), R9
	MOVQ dx+24(FP), DI
	MOVQ n+32(FP), BX
	MOVQ acc+40(FP), R10
	MOVQ k+48(FP), CX
	SHRQ $3, BX
	JZ   bdone
	VMOVUPS K_ONE(CX), Y6

bloop:
	VMOVUPS (SI), Y0                // v
	VMOVUPS (R8), Y1                // t
	VMULPS  Y1, Y1, Y3              // t²
	VSUBPS  Y3, Y6, Y4              // 1 − t²
	VMULPS  Y0, Y0, Y5              // v²
	VFMADD132PS K_3C3(CX), Y6, Y5   // 1 + 3·0.044715·v²
	VMULPS  Y5, Y4, Y4
	VMULPS  Y0, Y4, Y4
	VMULPS  K_HS(CX), Y4, Y4        // ½√(2/π)·v·(1−t²)(1+…)
	VADDPS  Y6, Y1, Y7              // 1 + t
	VMULPS  K_HALF(CX), Y7, Y7      // ½(1+t)
	VADDPS  Y4, Y7, Y4              // g
	VMULPS  (R9), Y4, Y4            // g·dy
	CMPQ R10, $0
	JEQ  bstore
	VADDPS  (DI), Y4, Y4

bstore:
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ BX
	JNZ  bloop

bdone:
	VZEROUPPER
	RET

// Offsets in expConsts.
#define E_LOG2E 0
#define E_C1    32
#define E_C2    64
#define E_P0    96
#define E_P1    128
#define E_P2    160
#define E_P3    192
#define E_P4    224
#define E_P5    256
#define E_ONE   288
#define E_MIN   320
#define E_BIAS  352

// func expShiftAVX2(dst, src *float32, n int, shift float32, sums *[4]float64, k *[12][8]float32)
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), BX
	VBROADCASTSS shift+24(FP), Y15
	MOVQ sums+32(FP), DX
	MOVQ k+40(FP), CX
	VXORPD Y13, Y13, Y13
	VXORPD Y14, Y14, Y14
	SHRQ $3, BX
	JZ   edone

eloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0             // x = src − shift
	VMULPS  E_LOG2E(CX), Y0, Y1
	VROUNDPS $0, Y1, Y1             // n = round(x·log2 e)
	VMOVAPS Y0, Y2
	VFNMADD231PS E_C1(CX), Y1, Y2   // r = x − n·C1
	VFNMADD231PS E_C2(CX), Y1, Y2   // r −= n·C2
	VMULPS  Y2, Y2, Y3              // r²
	VMOVUPS E_P1(CX), Y4
	VFMADD213PS E_P0(CX), Y2, Y4    // c0 + c1·r
	VMOVUPS E_P3(CX), Y5
	VFMADD213PS E_P2(CX), Y2, Y5    // c2 + c3·r
	VMOVUPS E_P5(CX), Y6
	VFMADD213PS E_P4(CX), Y2, Y6    // c4 + c5·r
	VFMADD231PS Y5, Y3, Y4          // + (c2 + c3·r)·r²
	VMULPS  Y3, Y3, Y7              // r⁴
	VFMADD231PS Y6, Y7, Y4          // p
	VADDPS  E_ONE(CX), Y2, Y8       // r + 1
	VFMADD231PS Y4, Y3, Y8          // p·r² + r + 1
	VCVTPS2DQ Y1, Y9
	VPADDD  E_BIAS(CX), Y9, Y9
	VPSLLD  $23, Y9, Y9             // 2^n
	VMULPS  Y9, Y8, Y8
	VCMPPS  $5, E_MIN(CX), Y0, Y10  // !(x < −87): keeps NaN
	VANDPS  Y10, Y8, Y8
	VMOVUPS Y8, (DI)
	VCVTPS2PD X8, Y11
	VADDPD  Y11, Y13, Y13
	VEXTRACTF128 $1, Y8, X12
	VCVTPS2PD X12, Y12
	VADDPD  Y12, Y14, Y14
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ BX
	JNZ  eloop

edone:
	VADDPD  Y14, Y13, Y13
	VMOVUPD Y13, (DX)
	VZEROUPPER
	RET

// func gemm4x16AVX2(k int, x *float32, ldx int, w *float32, ldw int, y *float32, ldy int, nb int)
// y[r, 16b+j] += Σ_i x[r, i]·w[i, 16b+j] for r < 4, j < 16, b < nb, i < k.
TEXT ·gemm4x16AVX2(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), AX
	MOVQ x+8(FP), R14
	MOVQ ldx+16(FP), CX
	SHLQ $2, CX                     // ldx in bytes
	MOVQ w+24(FP), R15
	MOVQ ldw+32(FP), R11
	SHLQ $2, R11                    // ldw in bytes
	MOVQ y+40(FP), DX
	MOVQ ldy+48(FP), R12
	SHLQ $2, R12                    // ldy in bytes
	MOVQ nb+56(FP), R13
	TESTQ R13, R13
	JZ   gdone
	TESTQ AX, AX
	JZ   gdone

gblock:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ R14, SI                    // x row 0
	LEAQ (SI)(CX*1), R8             // row 1
	LEAQ (R8)(CX*1), R9             // row 2
	LEAQ (R9)(CX*1), R10            // row 3
	MOVQ R15, DI                    // w[0, block]
	MOVQ AX, BX

gk:
	VMOVUPS (DI), Y8
	VMOVUPS 32(DI), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS (R8), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS (R9), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VBROADCASTSS (R10), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $4, R9
	ADDQ $4, R10
	ADDQ R11, DI
	DECQ BX
	JNZ  gk

	// y rows += accumulators
	MOVQ DX, DI
	VADDPS (DI), Y0, Y0
	VADDPS 32(DI), Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ R12, DI
	VADDPS (DI), Y2, Y2
	VADDPS 32(DI), Y3, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	ADDQ R12, DI
	VADDPS (DI), Y4, Y4
	VADDPS 32(DI), Y5, Y5
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	ADDQ R12, DI
	VADDPS (DI), Y6, Y6
	VADDPS 32(DI), Y7, Y7
	VMOVUPS Y6, (DI)
	VMOVUPS Y7, 32(DI)

	ADDQ $64, R15                   // next 16 columns
	ADDQ $64, DX
	DECQ R13
	JNZ  gblock

gdone:
	VZEROUPPER
	RET

// func dotRowsAVX2(q *float32, k *float32, ldk int, n int, hs8 int, scale float32, out *float32)
// out[j] = scale · Σ_i k[j·ldk + i]·q[i] for j < n, i < 8·hs8 (1 ≤ hs8 ≤ 8).
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-56
	MOVQ q+0(FP), SI
	MOVQ k+8(FP), DI
	MOVQ ldk+16(FP), R11
	SHLQ $2, R11
	MOVQ n+24(FP), BX
	MOVQ hs8+32(FP), CX
	VBROADCASTSS scale+40(FP), Y15
	MOVQ out+48(FP), DX
	TESTQ BX, BX
	JZ   ddone

drow:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ DI, R8
	MOVQ SI, R9
	MOVQ CX, R10
	// two accumulators, 8 lanes per step
dlane:
	VMOVUPS (R8), Y2
	VFMADD231PS (R9), Y2, Y0
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ R10
	JZ   dsum
	VMOVUPS (R8), Y3
	VFMADD231PS (R9), Y3, Y1
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ R10
	JNZ  dlane

dsum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VMULSS X15, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R11, DI
	DECQ BX
	JNZ  drow

ddone:
	VZEROUPPER
	RET

// func axpyRowsAVX2(p *float32, v *float32, ldv int, n int, hs8 int, out *float32)
// out[i] = Σ_j p[j]·v[j·ldv + i] for i < 8·hs8 (hs8 = 4 exactly: 32 lanes), j < n.
TEXT ·axpyRows32AVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ v+8(FP), DI
	MOVQ ldv+16(FP), R11
	SHLQ $2, R11
	MOVQ n+24(FP), BX
	MOVQ out+40(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ BX, BX
	JZ   astore

arow:
	VBROADCASTSS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y4, Y1
	VFMADD231PS 64(DI), Y4, Y2
	VFMADD231PS 96(DI), Y4, Y3
	ADDQ $4, SI
	ADDQ R11, DI
	DECQ BX
	JNZ  arow

astore:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// func sumF64AVX2(x *float32, n8 int, shift float32, sq int, out *[4]float64)
// out = four partial sums over i < 8·n8 of float64(x[i] − shift), or of its
// square when sq ≠ 0.
TEXT ·sumF64AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ n8+8(FP), BX
	VBROADCASTSS shift+16(FP), Y15
	MOVQ sq+24(FP), R8
	MOVQ out+32(FP), DX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	TESTQ BX, BX
	JZ   sdone

sloop:
	VMOVUPS (SI), Y2
	VSUBPS  Y15, Y2, Y2
	VCVTPS2PD X2, Y3
	VEXTRACTF128 $1, Y2, X4
	VCVTPS2PD X4, Y4
	TESTQ R8, R8
	JZ   splain
	VFMADD231PD Y3, Y3, Y0
	VFMADD231PD Y4, Y4, Y1
	JMP  snext

splain:
	VADDPD Y3, Y0, Y0
	VADDPD Y4, Y1, Y1

snext:
	ADDQ $32, SI
	DECQ BX
	JNZ  sloop

sdone:
	VADDPD Y1, Y0, Y0
	VMOVUPD Y0, (DX)
	VZEROUPPER
	RET

// func lnNormAVX2(x, w, b, y *float32, n8 int, m, rs float32)
// y[i] = (x[i] − m)·rs·w[i] + b[i] for i < 8·n8.
TEXT ·lnNormAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), R8
	MOVQ b+16(FP), R9
	MOVQ y+24(FP), DI
	MOVQ n8+32(FP), BX
	VBROADCASTSS m+40(FP), Y14
	VBROADCASTSS rs+44(FP), Y15
	TESTQ BX, BX
	JZ   ndone

nloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y14, Y0, Y0
	VMULPS  Y15, Y0, Y0
	VMOVUPS (R9), Y1
	VFMADD231PS (R8), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ BX
	JNZ  nloop

ndone:
	VZEROUPPER
	RET

// func lnBwdSumsAVX2(x, dy, w, pw, pb *float32, n8 int, m, rs float32, out *[2]float32)
// With nj = (x−m)·rs, g = dy, dn = w·g: pw += nj·g, pb += g, and out =
// (Σ dn, Σ dn·nj) over i < 8·n8 (8 float32 lanes, then summed).
TEXT ·lnBwdSumsAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R8
	MOVQ w+16(FP), R9
	MOVQ pw+24(FP), R10
	MOVQ pb+32(FP), R11
	MOVQ n8+40(FP), BX
	VBROADCASTSS m+48(FP), Y14
	VBROADCASTSS rs+52(FP), Y15
	MOVQ out+56(FP), DX
	VXORPS Y0, Y0, Y0               // Σ dn
	VXORPS Y1, Y1, Y1               // Σ dn·nj
	TESTQ BX, BX
	JZ   bsdone

bsloop:
	VMOVUPS (SI), Y2
	VSUBPS  Y14, Y2, Y2
	VMULPS  Y15, Y2, Y2             // nj
	VMOVUPS (R8), Y3                // g
	VMULPS  (R9), Y3, Y4            // dn = w·g
	VADDPS  Y4, Y0, Y0
	VFMADD231PS Y4, Y2, Y1
	VMOVUPS (R10), Y5
	VFMADD231PS Y3, Y2, Y5          // pw += nj·g
	VMOVUPS Y5, (R10)
	VADDPS  (R11), Y3, Y6           // pb += g
	VMOVUPS Y6, (R11)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R11
	DECQ BX
	JNZ  bsloop

bsdone:
	VEXTRACTF128 $1, Y0, X2
	VADDPS X2, X0, X0
	VMOVHLPS X0, X2, X2
	VADDPS X2, X0, X0
	VMOVSHDUP X0, X2
	VADDSS X2, X0, X0
	VMOVSS X0, (DX)
	VEXTRACTF128 $1, Y1, X2
	VADDPS X2, X1, X1
	VMOVHLPS X1, X2, X2
	VADDPS X2, X1, X1
	VMOVSHDUP X1, X2
	VADDSS X2, X1, X1
	VMOVSS X1, 4(DX)
	VZEROUPPER
	RET

// func lnBwdDxAVX2(x, dy, w, dx *float32, n8 int, m, rs, sdn, sdnn float32, acc int)
// dx[i] (+)= (w[i]·dy[i] − sdn − nj·sdnn)·rs with nj = (x[i]−m)·rs.
TEXT ·lnBwdDxAVX2(SB), NOSPLIT, $0-64
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), R8
	MOVQ w+16(FP), R9
	MOVQ dx+24(FP), DI
	MOVQ n8+32(FP), BX
	VBROADCASTSS m+40(FP), Y12
	VBROADCASTSS rs+44(FP), Y13
	VBROADCASTSS sdn+48(FP), Y14
	VBROADCASTSS sdnn+52(FP), Y15
	MOVQ acc+56(FP), R10
	TESTQ BX, BX
	JZ   bxdone

bxloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y12, Y0, Y0
	VMULPS  Y13, Y0, Y0             // nj
	VMOVUPS (R8), Y1
	VMULPS  (R9), Y1, Y1            // w·dy
	VSUBPS  Y14, Y1, Y1             // − sdn
	VFNMADD231PS Y15, Y0, Y1        // − nj·sdnn
	VMULPS  Y13, Y1, Y1             // ·rs
	TESTQ R10, R10
	JZ   bxstore
	VADDPS  (DI), Y1, Y1

bxstore:
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, DI
	DECQ BX
	JNZ  bxloop

bxdone:
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n8 int) float32
// max over x[i], i < 8·n8 (n8 ≥ 1).
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n8+8(FP), BX
	VMOVUPS (SI), Y0
	ADDQ $32, SI
	DECQ BX
	JZ   mdone

mloop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	DECQ BX
	JNZ  mloop

mdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(dst, src *float32, n8 int, a float32, acc int)
// dst[i] = a·src[i] (acc = 0) or dst[i] += a·src[i], i < 8·n8.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n8+16(FP), BX
	VBROADCASTSS a+24(FP), Y15
	MOVQ acc+32(FP), R8
	TESTQ BX, BX
	JZ   scdone

scloop:
	VMULPS (SI), Y15, Y0
	TESTQ R8, R8
	JZ   scstore
	VADDPS (DI), Y0, Y0

scstore:
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ BX
	JNZ  scloop

scdone:
	VZEROUPPER
	RET

// func gemv1AVX2(k int, x *float32, w *float32, ldw int, y *float32, n8 int)
// y[j] += Σ_i x[i]·w[i·ldw + j] for j < 8·n8, i < k: every column's sum
// starts at 0 and runs over i in order, one fused multiply-add per term,
// then is added to y[j] (the same arithmetic in the 64-, 32- and 8-column
// strips, so a column's result does not depend on which strip it is in).
TEXT ·gemv1AVX2(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), AX
	MOVQ x+8(FP), R14
	MOVQ w+16(FP), R15
	MOVQ ldw+24(FP), R11
	SHLQ $2, R11                    // ldw in bytes
	MOVQ y+32(FP), DX
	MOVQ n8+40(FP), R13
	TESTQ AX, AX
	JZ   vdone

v64:
	CMPQ R13, $8
	JLT  v32
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ R14, SI
	MOVQ R15, DI
	MOVQ AX, BX

v64k:
	VBROADCASTSS (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS 32(DI), Y8, Y1
	VFMADD231PS 64(DI), Y8, Y2
	VFMADD231PS 96(DI), Y8, Y3
	VFMADD231PS 128(DI), Y8, Y4
	VFMADD231PS 160(DI), Y8, Y5
	VFMADD231PS 192(DI), Y8, Y6
	VFMADD231PS 224(DI), Y8, Y7
	ADDQ $4, SI
	ADDQ R11, DI
	DECQ BX
	JNZ  v64k

	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS 64(DX), Y2, Y2
	VADDPS 96(DX), Y3, Y3
	VADDPS 128(DX), Y4, Y4
	VADDPS 160(DX), Y5, Y5
	VADDPS 192(DX), Y6, Y6
	VADDPS 224(DX), Y7, Y7
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	ADDQ $256, R15
	ADDQ $256, DX
	SUBQ $8, R13
	JMP  v64

v32:
	CMPQ R13, $4
	JLT  v8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ R14, SI
	MOVQ R15, DI
	MOVQ AX, BX

v32k:
	VBROADCASTSS (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	VFMADD231PS 32(DI), Y8, Y1
	VFMADD231PS 64(DI), Y8, Y2
	VFMADD231PS 96(DI), Y8, Y3
	ADDQ $4, SI
	ADDQ R11, DI
	DECQ BX
	JNZ  v32k

	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	VADDPS 64(DX), Y2, Y2
	VADDPS 96(DX), Y3, Y3
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	ADDQ $128, R15
	ADDQ $128, DX
	SUBQ $4, R13

v8:
	TESTQ R13, R13
	JZ   vdone
	VXORPS Y0, Y0, Y0
	MOVQ R14, SI
	MOVQ R15, DI
	MOVQ AX, BX

v8k:
	VBROADCASTSS (SI), Y8
	VFMADD231PS (DI), Y8, Y0
	ADDQ $4, SI
	ADDQ R11, DI
	DECQ BX
	JNZ  v8k

	VADDPS (DX), Y0, Y0
	VMOVUPS Y0, (DX)
	ADDQ $32, R15
	ADDQ $32, DX
	DECQ R13
	JMP  v8

vdone:
	VZEROUPPER
	RET

// func dotAccAVX2(x *float32, w *float32, ldw int, n int, k8 int, y *float32)
// y[j] += Σ_i w[j·ldw + i]·x[i] for j < n, i < 8·k8 (k8 ≥ 1). Per row, two
// accumulators take the 8-lane blocks alternately (block 0 to the first),
// are added, reduced across lanes in a fixed order and then added to y[j]:
// the same arithmetic in the 4-row and the 1-row loop.
TEXT ·dotAccAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ ldw+16(FP), R11
	SHLQ $2, R11                    // ldw in bytes
	MOVQ n+24(FP), BX
	MOVQ k8+32(FP), CX
	MOVQ y+40(FP), DX

q4:
	CMPQ BX, $4
	JLT  q1
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ DI, R8                     // row 0
	LEAQ (R8)(R11*1), R9            // row 1
	LEAQ (R9)(R11*1), R10           // row 2
	LEAQ (R10)(R11*1), R12          // row 3
	MOVQ SI, R13
	MOVQ CX, R14

q4k:
	VMOVUPS (R13), Y8
	VFMADD231PS (R8), Y8, Y0
	VFMADD231PS (R9), Y8, Y2
	VFMADD231PS (R10), Y8, Y4
	VFMADD231PS (R12), Y8, Y6
	ADDQ $32, R13
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R12
	DECQ R14
	JZ   q4sum
	VMOVUPS (R13), Y9
	VFMADD231PS (R8), Y9, Y1
	VFMADD231PS (R9), Y9, Y3
	VFMADD231PS (R10), Y9, Y5
	VFMADD231PS (R12), Y9, Y7
	ADDQ $32, R13
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	ADDQ $32, R12
	DECQ R14
	JNZ  q4k

q4sum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VADDSS (DX), X0, X0
	VMOVSS X0, (DX)

	VADDPS Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VADDPS X3, X2, X2
	VMOVHLPS X2, X3, X3
	VADDPS X3, X2, X2
	VMOVSHDUP X2, X3
	VADDSS X3, X2, X2
	VADDSS 4(DX), X2, X2
	VMOVSS X2, 4(DX)

	VADDPS Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VMOVHLPS X4, X5, X5
	VADDPS X5, X4, X4
	VMOVSHDUP X4, X5
	VADDSS X5, X4, X4
	VADDSS 8(DX), X4, X4
	VMOVSS X4, 8(DX)

	VADDPS Y7, Y6, Y6
	VEXTRACTF128 $1, Y6, X7
	VADDPS X7, X6, X6
	VMOVHLPS X6, X7, X7
	VADDPS X7, X6, X6
	VMOVSHDUP X6, X7
	VADDSS X7, X6, X6
	VADDSS 12(DX), X6, X6
	VMOVSS X6, 12(DX)

	ADDQ $16, DX
	LEAQ (DI)(R11*4), DI
	SUBQ $4, BX
	JMP  q4

q1:
	TESTQ BX, BX
	JZ   qdone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ DI, R8
	MOVQ SI, R13
	MOVQ CX, R14

q1k:
	VMOVUPS (R13), Y8
	VFMADD231PS (R8), Y8, Y0
	ADDQ $32, R13
	ADDQ $32, R8
	DECQ R14
	JZ   q1sum
	VMOVUPS (R13), Y9
	VFMADD231PS (R8), Y9, Y1
	ADDQ $32, R13
	ADDQ $32, R8
	DECQ R14
	JNZ  q1k

q1sum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X1, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VADDSS (DX), X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R11, DI
	DECQ BX
	JMP  q1

qdone:
	VZEROUPPER
	RET

// func gemm8x32AVX512(k int, x *float32, ldx int, w *float32, ldw int, y *float32, ldy int, nb int)
// y[r, 32b+j] += Σ_i x[r, i]·w[i, 32b+j] for r < 8, j < 32, b < nb, i < k:
// per element a fused multiply-add chain from 0 over i in order, then added
// to y (gemm4x16AVX2's and gemv1AVX2's arithmetic, so results agree bit
// for bit whichever kernel computes an element).
TEXT ·gemm8x32AVX512(SB), NOSPLIT, $0-64
	MOVQ k+0(FP), AX
	MOVQ x+8(FP), R14
	MOVQ ldx+16(FP), CX
	SHLQ $2, CX                     // ldx in bytes
	MOVQ w+24(FP), R15
	MOVQ ldw+32(FP), R11
	SHLQ $2, R11                    // ldw in bytes
	MOVQ y+40(FP), DX
	MOVQ ldy+48(FP), R12
	SHLQ $2, R12                    // ldy in bytes
	MOVQ nb+56(FP), R13
	TESTQ R13, R13
	JZ   edone
	TESTQ AX, AX
	JZ   edone
	LEAQ (CX)(CX*2), R10            // 3·ldx

eblock:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ R14, SI                    // x rows 0..3 via SI + {0,1,2,3}·ldx
	LEAQ (SI)(CX*4), R8             // x rows 4..7
	MOVQ R15, DI
	MOVQ AX, BX

ek:
	VMOVUPS (DI), Z16
	VMOVUPS 64(DI), Z17
	VBROADCASTSS (SI), Z18
	VFMADD231PS Z16, Z18, Z0
	VFMADD231PS Z17, Z18, Z1
	VBROADCASTSS (SI)(CX*1), Z19
	VFMADD231PS Z16, Z19, Z2
	VFMADD231PS Z17, Z19, Z3
	VBROADCASTSS (SI)(CX*2), Z20
	VFMADD231PS Z16, Z20, Z4
	VFMADD231PS Z17, Z20, Z5
	VBROADCASTSS (SI)(R10*1), Z21
	VFMADD231PS Z16, Z21, Z6
	VFMADD231PS Z17, Z21, Z7
	VBROADCASTSS (R8), Z18
	VFMADD231PS Z16, Z18, Z8
	VFMADD231PS Z17, Z18, Z9
	VBROADCASTSS (R8)(CX*1), Z19
	VFMADD231PS Z16, Z19, Z10
	VFMADD231PS Z17, Z19, Z11
	VBROADCASTSS (R8)(CX*2), Z20
	VFMADD231PS Z16, Z20, Z12
	VFMADD231PS Z17, Z20, Z13
	VBROADCASTSS (R8)(R10*1), Z21
	VFMADD231PS Z16, Z21, Z14
	VFMADD231PS Z17, Z21, Z15
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ R11, DI
	DECQ BX
	JNZ  ek

	MOVQ DX, DI
	VADDPS (DI), Z0, Z0
	VADDPS 64(DI), Z1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z2, Z2
	VADDPS 64(DI), Z3, Z3
	VMOVUPS Z2, (DI)
	VMOVUPS Z3, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z4, Z4
	VADDPS 64(DI), Z5, Z5
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z6, Z6
	VADDPS 64(DI), Z7, Z7
	VMOVUPS Z6, (DI)
	VMOVUPS Z7, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z8, Z8
	VADDPS 64(DI), Z9, Z9
	VMOVUPS Z8, (DI)
	VMOVUPS Z9, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z10, Z10
	VADDPS 64(DI), Z11, Z11
	VMOVUPS Z10, (DI)
	VMOVUPS Z11, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z12, Z12
	VADDPS 64(DI), Z13, Z13
	VMOVUPS Z12, (DI)
	VMOVUPS Z13, 64(DI)
	ADDQ R12, DI
	VADDPS (DI), Z14, Z14
	VADDPS 64(DI), Z15, Z15
	VMOVUPS Z14, (DI)
	VMOVUPS Z15, 64(DI)

	ADDQ $128, R15                  // next 32 columns
	ADDQ $128, DX
	DECQ R13
	JNZ  eblock

edone:
	VZEROUPPER
	RET
