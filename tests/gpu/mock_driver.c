/* mock_driver.c — an empty libcuda.so.1, so that kvtier's driver probe passes when the mock runtime stands in for CUDA. */
int kvt_mock_driver_present;
int kvt_mock_driver_present = 1;
