//! The shape of an activation, NHWC: what the kernels, the ops and the gradient tape all speak.

/// An activation's shape in the model's layout, NHWC (a vector per image is `[n, 1, 1, c]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Images in the batch.
    pub n: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// A shape from its four sides.
    pub fn new(n: usize, h: usize, w: usize, c: usize) -> Shape {
        Shape { n, h, w, c }
    }

    /// Elements in total.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Pixels in total (rows of the `[n*h*w, c]` matrix view).
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Whether the shape holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
