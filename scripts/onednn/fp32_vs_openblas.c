// oneDNN's fp32 matmul against OpenBLAS's sgemm, both single-threaded, on one thread's share of configuration (b)'s
// products (forward x·Wᵀ, input gradient dout·W, weight gradient doutᵀ·x), interleaved OpenBLAS / oneDNN / OpenBLAS,
// two rounds (docs/benchmarks.md, Intel section: which library runs fp32). Build and run: scripts/bench-onednn.sh
#include <oneapi/dnnl/dnnl.h>
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t eng; dnnl_stream_t st;
// C[M,N] = A[M,K] * op(B); tA/tB: transposed storage
double onednn(int M,int N,int K,int tA,int tB,float*A,float*B,float*C){
  dnnl_memory_desc_t a,b,c; dnnl_dims_t ad={M,K}, bd={K,N}, cd={M,N};
  dnnl_dims_t as_n={K,1}, as_t={1,M}, bs_n={N,1}, bs_t={1,K}, cs={N,1};
  dnnl_memory_desc_init_by_strides(&a,2,ad,dnnl_f32,tA?as_t:as_n);
  dnnl_memory_desc_init_by_strides(&b,2,bd,dnnl_f32,tB?bs_t:bs_n);
  dnnl_memory_desc_init_by_strides(&c,2,cd,dnnl_f32,cs);
  dnnl_matmul_desc_t d; dnnl_matmul_desc_init(&d,&a,&b,NULL,&c);
  dnnl_primitive_desc_t pd; if(dnnl_primitive_desc_create(&pd,&d,NULL,eng,NULL)) return -1;
  dnnl_primitive_t p; dnnl_primitive_create(&p,pd);
  dnnl_memory_t ma,mb,mc; dnnl_memory_create(&ma,&a,eng,A);dnnl_memory_create(&mb,&b,eng,B);dnnl_memory_create(&mc,&c,eng,C);
  dnnl_exec_arg_t args[3]={{DNNL_ARG_SRC,ma},{DNNL_ARG_WEIGHTS,mb},{DNNL_ARG_DST,mc}};
  dnnl_primitive_execute(p,st,3,args); dnnl_stream_wait(st);
  double t0=now(); int reps=0; while(now()-t0<0.3){dnnl_primitive_execute(p,st,3,args);reps++;} dnnl_stream_wait(st);
  return 2.0*M*N*K*reps/(now()-t0)/1e9;
}
double blas(int M,int N,int K,int tA,int tB,float*A,float*B,float*C){
  int lda = tA?M:K, ldb = tB?K:N;
  cblas_sgemm(CblasRowMajor, tA?CblasTrans:CblasNoTrans, tB?CblasTrans:CblasNoTrans, M,N,K,1,A,lda,B,ldb,0,C,N);
  double t0=now(); int reps=0; while(now()-t0<0.3){cblas_sgemm(CblasRowMajor, tA?CblasTrans:CblasNoTrans, tB?CblasTrans:CblasNoTrans, M,N,K,1,A,lda,B,ldb,0,C,N);reps++;}
  return 2.0*M*N*K*reps/(now()-t0)/1e9;
}
int main(){
  openblas_set_num_threads(1);
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&st,eng,dnnl_stream_default_flags);
  // one thread's half of (b)'s products: rows 1024 of B*T=2048; forward x·Wᵀ (tB), dinp = dout·W, dW = doutᵀ·x (tA)
  int s[][5]={{1024,1152,384,0,1},{1024,384,384,0,1},{1024,1536,384,0,1},{1024,384,1536,0,1},
              {1024,384,1152,0,0},{1024,384,1536,0,0},{1024,1536,384,0,0},
              {576,384,2048,1,0},{768,384,2048,1,0},{192,1536,2048,1,0}};
  float*A=malloc(4<<24),*B=malloc(4<<24),*C=malloc(4<<24);
  for(int i=0;i<(1<<24);i++){A[i]=(i%7)*0.1f;B[i]=(i%5)*0.1f;}
  for(int r=0;r<2;r++) for(int i=0;i<10;i++){ int*x=s[i];
    double o=blas(x[0],x[1],x[2],x[3],x[4],A,B,C), d=onednn(x[0],x[1],x[2],x[3],x[4],A,B,C), o2=blas(x[0],x[1],x[2],x[3],x[4],A,B,C);
    printf("M%5d N%5d K%5d tA%d tB%d: openblas %6.1f / %6.1f  onednn %6.1f GFLOP/s\n",x[0],x[1],x[2],x[3],x[4],o,o2,d);}
}
