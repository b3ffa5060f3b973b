// Float64 reference of the matrix multiply (native/core/kernels/matmul.h): C = alpha op(A) op(B) + beta C
// with op(X) = X or X^T, row-major. It also returns each element's error scale, the sum of the
// magnitudes an f32 (or bf16) kernel rounds: |alpha| sum_k |op(A)_ik op(B)_kj| + |beta C_ij|.

export interface MatmulProblem {
  a: Float32Array; // [M, K], or [K, M] when transA
  b: Float32Array; // [K, N], or [N, K] when transB
  c?: Float32Array; // [M, N], read when beta != 0
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
}

export interface MatmulReference {
  c: Float64Array;
  scale: Float64Array;
}

export function matmulReference(p: MatmulProblem): MatmulReference {
  const { a, b, m, n, k, transA, transB, alpha, beta } = p;
  const c = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  const opA = (i: number, q: number) => (transA ? a[q * m + i] : a[i * k + q]);
  const opB = (q: number, j: number) => (transB ? b[j * k + q] : b[q * n + j]);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let abs = 0;
      for (let q = 0; q < k; q++) {
        const prod = opA(i, q) * opB(q, j);
        sum += prod;
        abs += Math.abs(prod);
      }
      // beta = 0 never reads C, so NaN there does not propagate (BLAS semantics).
      const old = beta === 0 ? 0 : beta * p.c![i * n + j];
      c[i * n + j] = alpha * sum + old;
      scale[i * n + j] = Math.abs(alpha) * abs + Math.abs(old);
    }
  }
  return { c, scale };
}
