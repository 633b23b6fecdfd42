// The model's GPU kernels, compiled at run time with NVRTC (see device.rs). They mirror the CPU kernels
// in ../kernels.rs and ../ops.rs: activations are NHWC, seen as [rows, c] matrices (rows = n * h * w);
// depthwise weights are [3, 3, c]; the stem's im2col columns are ordered (ky, kx, cin).
//
// Reductions over rows (BatchNorm's sums, the depthwise weight gradient) write one partial result per
// block row and then add the partials in a fixed order (reduce_partials), never with atomics, so a
// training run on the GPU is as reproducible as one on the CPU.

#define GRID_STRIDE(i, total) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (total); \
         i += (long long)gridDim.x * blockDim.x)

// The channel-parallel reductions run in blocks of CHANNELS x ROWS threads: threadIdx.x picks a channel,
// threadIdx.y and blockIdx.y stride over the rows.
#define CHANNELS 32
#define ROWS 8

extern "C" __global__ void im2col(const float* x, float* cols, int n, int h, int w, int c, int k,
                                  int stride, int pad_top, int pad_left, int out_h, int out_w) {
    int width = k * k * c;
    GRID_STRIDE(i, (long long)n * out_h * out_w * width) {
        long long row = i / width;
        int col = (int)(i % width);
        int ci = col % c, tap = col / c;
        int kx = tap % k, ky = tap / k;
        int ox = (int)(row % out_w);
        long long rest = row / out_w;
        int oy = (int)(rest % out_h), b = (int)(rest / out_h);
        int iy = oy * stride + ky - pad_top, ix = ox * stride + kx - pad_left;
        cols[i] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                      ? x[(((long long)b * h + iy) * w + ix) * c + ci]
                      : 0.0f;
    }
}

// y[b, oy, ox, ch] = sum over the 3x3 taps of x[b, iy, ix, ch] * w[ky, kx, ch].
extern "C" __global__ void depthwise_forward(const float* x, const float* wt, float* y, int n, int h,
                                             int w, int c, int stride, int pad_top, int pad_left,
                                             int out_h, int out_w) {
    GRID_STRIDE(i, (long long)n * out_h * out_w * c) {
        int ch = (int)(i % c);
        long long p = i / c;
        int ox = (int)(p % out_w);
        long long rest = p / out_w;
        int oy = (int)(rest % out_h), b = (int)(rest / out_h);
        float sum = 0.0f;
        for (int ky = 0; ky < 3; ky++) {
            int iy = oy * stride + ky - pad_top;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < 3; kx++) {
                int ix = ox * stride + kx - pad_left;
                if (ix < 0 || ix >= w) continue;
                sum += x[(((long long)b * h + iy) * w + ix) * c + ch] * wt[(ky * 3 + kx) * c + ch];
            }
        }
        y[i] = sum;
    }
}

// dx[b, iy, ix, ch] = sum over the taps that read (iy, ix) of dy[b, oy, ox, ch] * w[ky, kx, ch].
extern "C" __global__ void depthwise_backward_input(const float* dy, const float* wt, float* dx, int n,
                                                    int h, int w, int c, int stride, int pad_top,
                                                    int pad_left, int out_h, int out_w) {
    GRID_STRIDE(i, (long long)n * h * w * c) {
        int ch = (int)(i % c);
        long long p = i / c;
        int ix = (int)(p % w);
        long long rest = p / w;
        int iy = (int)(rest % h), b = (int)(rest / h);
        float sum = 0.0f;
        for (int ky = 0; ky < 3; ky++) {
            int sy = iy + pad_top - ky;
            if (sy < 0 || sy % stride != 0 || sy / stride >= out_h) continue;
            int oy = sy / stride;
            for (int kx = 0; kx < 3; kx++) {
                int sx = ix + pad_left - kx;
                if (sx < 0 || sx % stride != 0 || sx / stride >= out_w) continue;
                int ox = sx / stride;
                sum += dy[(((long long)b * out_h + oy) * out_w + ox) * c + ch] *
                       wt[(ky * 3 + kx) * c + ch];
            }
        }
        dx[i] = sum;
    }
}

// Partial depthwise weight gradients: partials[blockIdx.y][tap * c + ch] is the sum, over this block
// row's output pixels, of dy[b, oy, ox, ch] * x[b, iy, ix, ch].
extern "C" __global__ void depthwise_backward_weight(const float* x, const float* dy, float* partials,
                                                     int n, int h, int w, int c, int stride,
                                                     int pad_top, int pad_left, int out_h,
                                                     int out_w) {
    __shared__ float part[ROWS][CHANNELS][9];
    int ch = blockIdx.x * CHANNELS + threadIdx.x;
    float acc[9];
    for (int t = 0; t < 9; t++) acc[t] = 0.0f;
    long long pixels = (long long)n * out_h * out_w;
    if (ch < c) {
        for (long long p = (long long)blockIdx.y * ROWS + threadIdx.y; p < pixels;
             p += (long long)gridDim.y * ROWS) {
            int ox = (int)(p % out_w);
            long long rest = p / out_w;
            int oy = (int)(rest % out_h), b = (int)(rest / out_h);
            float g = dy[p * c + ch];
            for (int ky = 0; ky < 3; ky++) {
                int iy = oy * stride + ky - pad_top;
                if (iy < 0 || iy >= h) continue;
                for (int kx = 0; kx < 3; kx++) {
                    int ix = ox * stride + kx - pad_left;
                    if (ix < 0 || ix >= w) continue;
                    acc[ky * 3 + kx] += g * x[(((long long)b * h + iy) * w + ix) * c + ch];
                }
            }
        }
    }
    for (int t = 0; t < 9; t++) part[threadIdx.y][threadIdx.x][t] = acc[t];
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        for (int t = 0; t < 9; t++) {
            float sum = 0.0f;
            for (int r = 0; r < ROWS; r++) sum += part[r][threadIdx.x][t];
            partials[(long long)blockIdx.y * 9 * c + t * c + ch] = sum;
        }
    }
}

// Partial per-channel sums for BatchNorm: partials[blockIdx.y][ch] = sum of a, and
// partials[blockIdx.y][c + ch] = sum of a * b, over this block row's rows, where a is x itself
// (forward: b = x, giving the sums of squares) or the gradient masked by ReLU6's output (backward:
// b = the BatchNorm's input). `y` is the ReLU6 output used as the mask, or null.
extern "C" __global__ void channel_sums(const float* a, const float* y, const float* b,
                                        double* partials, long long rows, int c) {
    __shared__ double part[2][ROWS][CHANNELS];
    int ch = blockIdx.x * CHANNELS + threadIdx.x;
    double sum = 0.0, dot = 0.0;
    if (ch < c) {
        for (long long r = (long long)blockIdx.y * ROWS + threadIdx.y; r < rows;
             r += (long long)gridDim.y * ROWS) {
            long long at = r * c + ch;
            float v = a[at];
            if (y != 0) {
                float out = y[at];
                v = (out > 0.0f && out < 6.0f) ? v : 0.0f;
            }
            sum += v;
            dot += (double)v * b[at];
        }
    }
    part[0][threadIdx.y][threadIdx.x] = sum;
    part[1][threadIdx.y][threadIdx.x] = dot;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        double s = 0.0, d = 0.0;
        for (int r = 0; r < ROWS; r++) {
            s += part[0][r][threadIdx.x];
            d += part[1][r][threadIdx.x];
        }
        partials[(long long)blockIdx.y * 2 * c + ch] = s;
        partials[(long long)blockIdx.y * 2 * c + c + ch] = d;
    }
}

// out[j] = sum over the `count` rows of partials[row][j], in row order.
extern "C" __global__ void reduce_partials_f64(const double* partials, double* out, int count,
                                               int width) {
    GRID_STRIDE(j, width) {
        double sum = 0.0;
        for (int r = 0; r < count; r++) sum += partials[(long long)r * width + j];
        out[j] = sum;
    }
}

extern "C" __global__ void reduce_partials_f32(const float* partials, float* out, int count,
                                               int width) {
    GRID_STRIDE(j, width) {
        float sum = 0.0f;
        for (int r = 0; r < count; r++) sum += partials[(long long)r * width + j];
        out[j] = sum;
    }
}

// BatchNorm's per-channel numbers, stats = [mean, inv_std, scale, shift] (4 c). With batch_stats they
// come from the batch's sums (sums = [sum x, sum x^2]) and the running statistics move towards them;
// otherwise from the running statistics.
extern "C" __global__ void batch_norm_statistics(const double* sums, long long rows, int c,
                                                 const float* gamma, const float* beta,
                                                 float* running_mean, float* running_var,
                                                 float momentum, float eps, int batch_stats,
                                                 float* stats) {
    GRID_STRIDE(ch, c) {
        float mean, inv_std;
        if (batch_stats) {
            double m = sums[ch] / (double)rows;
            double var = fmax(sums[c + ch] / (double)rows - m * m, 0.0);
            double unbiased = (double)rows / (double)((rows > 2 ? rows : 2) - 1);
            double mo = (double)momentum;
            running_mean[ch] = (float)((1.0 - mo) * (double)running_mean[ch] + mo * m);
            running_var[ch] = (float)((1.0 - mo) * (double)running_var[ch] + mo * var * unbiased);
            mean = (float)m;
            inv_std = (float)(1.0 / sqrt(var + (double)eps));
        } else {
            mean = running_mean[ch];
            inv_std = 1.0f / sqrtf(running_var[ch] + eps);
        }
        float scale = gamma[ch] * inv_std;
        stats[ch] = mean;
        stats[c + ch] = inv_std;
        stats[2 * c + ch] = scale;
        stats[3 * c + ch] = beta[ch] - mean * scale;
    }
}

// y = x * scale + shift per channel, then ReLU6 when relu6.
extern "C" __global__ void batch_norm_apply(const float* x, const float* stats, float* y,
                                            long long len, int c, int relu6) {
    GRID_STRIDE(i, len) {
        int ch = (int)(i % c);
        float z = x[i] * stats[2 * c + ch] + stats[3 * c + ch];
        y[i] = relu6 ? fminf(fmaxf(z, 0.0f), 6.0f) : z;
    }
}

// The gradients of gamma and beta from the backward sums (sums = [sum dz, sum dz * x]).
extern "C" __global__ void batch_norm_parameter_gradients(const double* sums, const float* stats,
                                                          int c, float* d_gamma, float* d_beta) {
    GRID_STRIDE(ch, c) {
        double d_b = sums[ch];
        d_beta[ch] = (float)d_b;
        d_gamma[ch] = (float)((sums[c + ch] - (double)stats[ch] * d_b) * (double)stats[c + ch]);
    }
}

// The input's gradient through BatchNorm (and ReLU6, masked by its output y when relu6).
extern "C" __global__ void batch_norm_backward_input(const float* dy, const float* y, const float* x,
                                                     const float* stats, const float* gamma,
                                                     const double* sums, long long rows, int c,
                                                     int relu6, int batch_stats, float* dx) {
    GRID_STRIDE(i, rows * c) {
        int ch = (int)(i % c);
        float dz = dy[i];
        if (relu6) dz = (y[i] > 0.0f && y[i] < 6.0f) ? dz : 0.0f;
        float mean = stats[ch], inv_std = stats[c + ch];
        float k = gamma[ch] * inv_std;
        if (batch_stats) {
            double d_b = sums[ch];
            double d_g = (sums[c + ch] - (double)mean * d_b) * (double)inv_std;
            float n = (float)rows;
            float xhat = (x[i] - mean) * inv_std;
            dx[i] = k * (dz - (float)d_b / n - xhat * ((float)d_g / n));
        } else {
            dx[i] = k * dz;
        }
    }
}

// out = a + b.
extern "C" __global__ void add(const float* a, const float* b, float* out, long long len) {
    GRID_STRIDE(i, len) { out[i] = a[i] + b[i]; }
}

// out = a * b, element-wise (dropout's mask).
extern "C" __global__ void multiply(const float* a, const float* b, float* out, long long len) {
    GRID_STRIDE(i, len) { out[i] = a[i] * b[i]; }
}

// y[b, ch] = mean over the `area` pixels of x[b, p, ch].
extern "C" __global__ void average_pool(const float* x, float* y, int n, int area, int c) {
    GRID_STRIDE(i, (long long)n * c) {
        int ch = (int)(i % c), b = (int)(i / c);
        float sum = 0.0f;
        for (int p = 0; p < area; p++) sum += x[((long long)b * area + p) * c + ch];
        y[i] = sum / (float)area;
    }
}

extern "C" __global__ void average_pool_backward(const float* dy, float* dx, int n, int area,
                                                 int c) {
    GRID_STRIDE(i, (long long)n * area * c) {
        int ch = (int)(i % c);
        long long b = i / ((long long)area * c);
        dx[i] = dy[b * c + ch] / (float)area;
    }
}

// y[r, j] += bias[j].
extern "C" __global__ void add_bias(float* y, const float* bias, long long rows, int cols) {
    GRID_STRIDE(i, rows * cols) { y[i] += bias[i % cols]; }
}

// One Adam (decoupled = 0: L2 decay in the gradient) or AdamW (decoupled = 1) update, as optim.rs.
extern "C" __global__ void adam(float* w, const float* g, float* m, float* v, long long len, float lr,
                                float beta1, float beta2, float correct1, float correct2, float eps,
                                float decay, int decoupled) {
    GRID_STRIDE(i, len) {
        float gi = g[i];
        if (!decoupled) gi += decay * w[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float wi = w[i] - lr * ((mi / correct1) / (sqrtf(vi / correct2) + eps));
        if (decoupled) wi -= lr * decay * wi;
        w[i] = wi;
    }
}
