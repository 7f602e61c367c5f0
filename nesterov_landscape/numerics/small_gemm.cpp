// The batched float32 products of a compiled stack through libxsmm's just-in-time kernels, as torch
// ops: small_gemm::ab (a[i] b[i]), small_gemm::atb (a[i]^T b[i]) and small_gemm::version (libxsmm's
// version and the instruction set its kernels target). libxsmm is column-major, so a row-major
// C = A B is computed as C^T = B^T A^T. Products of more than 64^3 multiply-adds a matrix (libxsmm's
// own bound for small ones), or that libxsmm makes no kernel for, are torch's bmm.
#include <libxsmm.h>  // first: without libxsmm the build fails before it reads torch's headers

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string>

namespace {

const float one = 1.f, zero = 0.f;
const int no_prefetch = LIBXSMM_GEMM_PREFETCH_NONE;  // the kernels take (a, b, c) only
// libxsmm sets itself up (CPU detection, code registry) when the library loads, not in the first product.
[[maybe_unused]] const int initialized = (libxsmm_init(), 0);

// A view whose matrices are each row-major and dense (any batch stride), as the kernels read them.
at::Tensor dense_rows(const at::Tensor& x) {
  return x.stride(2) == 1 && x.stride(1) == x.size(2) ? x : x.contiguous();
}

void check(const at::Tensor& a, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0), "small_gemm: two (B, rows, cols) stacks");
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat, "small_gemm: float32 only");
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "small_gemm: CPU tensors only");
}

// c[i] (M x N) = op(a[i]) b[i]: a[i] stored M x K or (ta) K x M, b[i] stored K x N.
at::Tensor batched(const at::Tensor& a_, const at::Tensor& b_, bool ta) {
  check(a_, b_);
  const at::Tensor a = dense_rows(a_), b = dense_rows(b_);
  const int64_t batch = a.size(0), M = ta ? a.size(2) : a.size(1), K = ta ? a.size(1) : a.size(2);
  const int64_t N = b.size(2);
  TORCH_CHECK(b.size(1) == K, "small_gemm: inner sizes differ");
  const libxsmm_blasint lda = N, ldb = ta ? M : K, ldc = N;
  const int flags = ta ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  const libxsmm_smmfunction kernel =
      M * N * K > LIBXSMM_MAX_MNK ? nullptr
                                  : libxsmm_smmdispatch(N, M, K, &lda, &ldb, &ldc, &one, &zero, &flags, &no_prefetch);
  if (kernel == nullptr) return at::bmm(ta ? a.transpose(1, 2) : a, b);
  at::Tensor c = at::empty({batch, M, N}, a.options());
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  const int64_t sa = a.stride(0), sb = b.stride(0);
  // each matrix by itself, so its bits do not depend on the threads (trainer.threads) or the batch
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) kernel(pb + i * sb, pa + i * sa, pc + i * M * N);
  });
  return c;
}

at::Tensor ab(const at::Tensor& a, const at::Tensor& b) { return batched(a, b, false); }
at::Tensor atb(const at::Tensor& a, const at::Tensor& b) { return batched(a, b, true); }

std::string version() { return std::string(LIBXSMM_VERSION) + " (" + libxsmm_get_target_arch() + ")"; }

}  // namespace

TORCH_LIBRARY(small_gemm, m) {
  m.def("ab(Tensor a, Tensor b) -> Tensor");
  m.def("atb(Tensor a, Tensor b) -> Tensor");
  m.def("version() -> str", version);
}

TORCH_LIBRARY_IMPL(small_gemm, CPU, m) {
  m.impl("ab", ab);
  m.impl("atb", atb);
}
